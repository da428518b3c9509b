"""delivery_batch: the members of each multicast request in flight, so a sender claims a range of deliveries in
one UPDATE and a restarted one resends exactly the requests a dead one may have made

Revision ID: 0005_delivery_batch
Revises: 0004_delivery_hot_updates
Create Date: 2026-12-05 02:22:42.064529
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import tutti.platform.db  # noqa: F401  (column types used by autogenerate)

revision = '0005_delivery_batch'
down_revision = '0004_delivery_hot_updates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_batch',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('delivery_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_delivery_batch_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_delivery_batch'))
    )
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_batch_campaign_id'), ['campaign_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_batch_campaign_id'))

    op.drop_table('delivery_batch')
