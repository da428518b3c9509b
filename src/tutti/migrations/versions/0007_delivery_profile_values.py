"""delivery.profile_values: the few-valued profile fields a delivery's message is made of (city, gender,
locale, time zone), as the audience snapshot read them, so the sender renders from the row it reads
instead of looking up every recipient's contact again

Revision ID: 0007_delivery_profile_values
Revises: 0006_delivery_no_sending
Create Date: 2026-12-06 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_delivery_profile_values'
down_revision = '0006_delivery_no_sending'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: instant on PostgreSQL; rows taken before it render as they did (by lookup)
    op.add_column('delivery', sa.Column('profile_values', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery') as batch_op:
        batch_op.drop_column('profile_values')
