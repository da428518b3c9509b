"""knowledge_calibration_question: a workspace's real questions with the item that answers them (or none),
which weigh in the fit of its confidence calibration and choose its thresholds (knowledge/questions.py).

Revision ID: 0009_calibration_questions
Revises: 0008_delivery_fillfactor_35
Create Date: 2026-12-06 20:30:00
"""

import sqlalchemy as sa
from alembic import op

import tutti.platform.db

revision = '0009_calibration_questions'
down_revision = '0008_delivery_fillfactor_35'
branch_labels = None
depends_on = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table('knowledge_calibration_question',
    sa.Column('id', big, nullable=False),
    sa.Column('workspace_id', big, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('item_id', big, nullable=True),
    sa.Column('embedding_key', sa.String(length=40), nullable=True),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', tutti.platform.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['knowledge_item.id'], name=op.f('fk_knowledge_calibration_question_item_id_knowledge_item'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_knowledge_calibration_question_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_calibration_question'))
    )
    with op.batch_alter_table('knowledge_calibration_question', schema=None) as batch_op:
        batch_op.create_index('ix_knowledge_calibration_question_workspace', ['workspace_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_knowledge_calibration_question_workspace', table_name='knowledge_calibration_question')
    op.drop_table('knowledge_calibration_question')
