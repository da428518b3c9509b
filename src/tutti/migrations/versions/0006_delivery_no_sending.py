"""deliveries are no longer marked `sending`: what is with the provider is the delivery_batch rows; rows an
older sender left `sending` go back to queued (a claim's rows lose its "c:" key and are read again; rows
of a retried request keep its key and go again as that request)

Revision ID: 0006_delivery_no_sending
Revises: 0005_delivery_batch
Create Date: 2026-12-05 17:00:00
"""

from alembic import op

revision = '0006_delivery_no_sending'
down_revision = '0005_delivery_batch'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE delivery SET status = 'queued', "
               "batch_key = CASE WHEN batch_key LIKE 'c:%' THEN NULL ELSE batch_key END "
               "WHERE status = 'sending'")


def downgrade() -> None:
    pass  # queued rows are valid for the older engine too
