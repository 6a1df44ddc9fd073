"""Recordings, their tracks (one encrypted file each), consent decisions (append-only).

Revision ID: 0003_recording
Revises: 0002_call
Create Date: 2026-11-25 11:50:14.495415

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_recording'
down_revision = '0002_call'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recordings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('requested', 'recording', 'paused', 'complete', 'incomplete', 'declined', 'cancelled', 'deleted', name='recordingstatus', native_enum=False, length=16), nullable=False),
    sa.Column('wording_version', sa.String(length=40), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=True),
    sa.Column('wrapped_key', sa.LargeBinary(length=128), nullable=True),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('stopped_at', sa.DateTime(), nullable=True),
    sa.Column('stop_reason', sa.String(length=64), nullable=True),
    sa.Column('alive_at', sa.DateTime(), nullable=True),
    sa.Column('manifest_digest', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_recordings_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['participants.id'], name=op.f('fk_recordings_requested_by_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings'))
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=True),
    sa.Column('decision', sa.Enum('granted', 'declined', 'withdrawn', 'acknowledged', name='decision', native_enum=False, length=16), nullable=False),
    sa.Column('wording_version', sa.String(length=40), nullable=False),
    sa.Column('wording', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_consents_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_consents_participant_id_participants')),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_consents_recording_id_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_recording_id'), ['recording_id'], unique=False)

    op.create_table('recording_tracks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('stopped_at', sa.DateTime(), nullable=True),
    sa.Column('video_frames', sa.Integer(), nullable=False),
    sa.Column('audio_frames', sa.Integer(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_recording_tracks_participant_id_participants')),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_recording_tracks_recording_id_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_tracks'))
    )
    with op.batch_alter_table('recording_tracks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_tracks_recording_id'), ['recording_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('recording_tracks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_tracks_recording_id'))

    op.drop_table('recording_tracks')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_recording_id'))
        batch_op.drop_index(batch_op.f('ix_consents_participant_id'))
        batch_op.drop_index(batch_op.f('ix_consents_appointment_id'))

    op.drop_table('consents')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recordings_appointment_id'))

    op.drop_table('recordings')
