"""delivery: no index on what the send path writes (status, batch_key), and half of each PostgreSQL page
left free, so marking a delivery sending and then sent are HOT updates that touch no index

Revision ID: 0004_delivery_hot_updates
Revises: 0003_order_facts
Create Date: 2026-12-04 17:20:00
"""

from alembic import op

revision = '0004_delivery_hot_updates'
down_revision = '0003_order_facts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_campaign_status')
        batch_op.drop_index('ix_delivery_batch')
        batch_op.create_index('ix_delivery_campaign_id', ['campaign_id', 'id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # applies to pages written from now on; existing pages fill as they are rewritten
        op.execute('ALTER TABLE delivery SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery RESET (fillfactor)')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_campaign_id')
        batch_op.create_index('ix_delivery_batch', ['batch_key'], unique=False)
        batch_op.create_index('ix_delivery_campaign_status', ['campaign_id', 'status', 'id'], unique=False)
