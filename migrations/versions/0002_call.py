"""Call presence on participants (who is connected, who may come back), chat messages.

Revision ID: 0002_call
Revises: 0001_initial
Create Date: 2026-11-25 09:23:09.427095

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_call'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.String(length=2000), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_chat_messages_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_chat_messages_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_messages'))
    )
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_messages_appointment_id'), ['appointment_id'], unique=False)

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('presence_sid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('waiting_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('audio_on', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('video_on', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('joined_call_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('away_since', sa.DateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('away_since')
        batch_op.drop_column('joined_call_at')
        batch_op.drop_column('video_on')
        batch_op.drop_column('audio_on')
        batch_op.drop_column('waiting_since')
        batch_op.drop_column('presence_sid')

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_messages_appointment_id'))

    op.drop_table('chat_messages')
