"""Playback sessions (every read of recording bytes, with its ranges) and retired invite hashes
(a replaced link answers 410, not 404).

Revision ID: 0006_playback
Revises: 0005_sessions
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_playback'
down_revision = '0005_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('playbacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('download', sa.Boolean(), nullable=False),
    sa.Column('audit_seq', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('last_read_at', sa.DateTime(), nullable=False),
    sa.Column('reads', sa.Integer(), nullable=False),
    sa.Column('ranges', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['recording_tracks.id'], name=op.f('fk_playbacks_track_id_recording_tracks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_playbacks'))
    )
    with op.batch_alter_table('playbacks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_playbacks_track_id'), ['track_id'], unique=False)

    op.create_table('retired_invites',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('retired_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_retired_invites_participant_id_participants')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_retired_invites'))
    )
    with op.batch_alter_table('retired_invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_invites_participant_id'), ['participant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('retired_invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retired_invites_participant_id'))

    op.drop_table('retired_invites')
    with op.batch_alter_table('playbacks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_playbacks_track_id'))

    op.drop_table('playbacks')
