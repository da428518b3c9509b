"""knowledge calibration: each workspace's fitted confidence calibration and the version it was fitted at

Revision ID: 0002_knowledge_calibration
Revises: 0001_initial
Create Date: 2026-12-04 14:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002_knowledge_calibration'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('knowledge_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calibration', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('calibrated_version', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('knowledge_version', schema=None) as batch_op:
        batch_op.drop_column('calibrated_version')
        batch_op.drop_column('calibration')
