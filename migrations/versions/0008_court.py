"""A hearing's court procedure: staff roles, representation, interpreters, screening, private
consultation rooms, the hearing's stage, the observer link, the bench's private messages.

Revision ID: 0008_court
Revises: 0007_janus
Create Date: 2026-12-01 06:00:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0008_court'
down_revision = '0007_janus'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consultation_rooms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('bench', 'counsel', name='roomkind', native_enum=False, length=16), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_consultation_rooms_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['participants.id'], name=op.f('fk_consultation_rooms_opened_by_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_rooms'))
    )
    with op.batch_alter_table('consultation_rooms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consultation_rooms_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('representations',
    sa.Column('counsel_id', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['counsel_id'], ['participants.id'], name=op.f('fk_representations_counsel_id_participants')),
    sa.ForeignKeyConstraint(['party_id'], ['participants.id'], name=op.f('fk_representations_party_id_participants')),
    sa.PrimaryKeyConstraint('counsel_id', 'party_id', name=op.f('pk_representations'))
    )
    with op.batch_alter_table('representations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_representations_party_id'), ['party_id'], unique=False)

    op.create_table('screenings',
    sa.Column('protected_id', sa.Integer(), nullable=False),
    sa.Column('hidden_from_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hidden_from_id'], ['participants.id'], name=op.f('fk_screenings_hidden_from_id_participants')),
    sa.ForeignKeyConstraint(['protected_id'], ['participants.id'], name=op.f('fk_screenings_protected_id_participants')),
    sa.PrimaryKeyConstraint('protected_id', 'hidden_from_id', name=op.f('pk_screenings'))
    )
    with op.batch_alter_table('screenings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_screenings_hidden_from_id'), ['hidden_from_id'], unique=False)

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hearing_stage', sa.Enum('opening', 'in_session', 'paused', name='hearingstage', native_enum=False, length=16), server_default='opening', nullable=False))
        batch_op.add_column(sa.Column('observer_link_enabled', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('observer_token_hash', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_appointments_observer_token_hash'), ['observer_token_hash'])

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.String(length=16), server_default='all', nullable=False))

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interprets_for_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=35), nullable=True))
        batch_op.add_column(sa.Column('place', sa.Enum('waiting', 'hearing', 'consultation', name='place', native_enum=False, length=16), server_default='waiting', nullable=False))
        batch_op.add_column(sa.Column('consultation_room_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('declared_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('mute_locked', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_participants_consultation_room_id_consultation_rooms'), 'consultation_rooms', ['consultation_room_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_participants_interprets_for_id_participants'), 'participants', ['interprets_for_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_participants_interprets_for_id_participants'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_participants_consultation_room_id_consultation_rooms'), type_='foreignkey')
        batch_op.drop_column('mute_locked')
        batch_op.drop_column('declared_at')
        batch_op.drop_column('consultation_room_id')
        batch_op.drop_column('place')
        batch_op.drop_column('language')
        batch_op.drop_column('interprets_for_id')

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_column('audience')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_appointments_observer_token_hash'), type_='unique')
        batch_op.drop_column('observer_token_hash')
        batch_op.drop_column('observer_link_enabled')
        batch_op.drop_column('hearing_stage')

    with op.batch_alter_table('screenings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_screenings_hidden_from_id'))

    op.drop_table('screenings')
    with op.batch_alter_table('representations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_representations_party_id'))

    op.drop_table('representations')
    with op.batch_alter_table('consultation_rooms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consultation_rooms_appointment_id'))

    op.drop_table('consultation_rooms')
