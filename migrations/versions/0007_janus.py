"""The Janus instance a hearing's room lives on (appointments.janus_url).

Revision ID: 0007_janus
Revises: 0006_playback
Create Date: 2026-12-01 12:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_janus'
down_revision = '0006_playback'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('janus_url', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_column('janus_url')
