"""delivery: first claim and whether the message was marked as a resend

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:17:10.900707

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('marked', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('first_claimed_at', sa.DateTime(timezone=True), nullable=True))

    # Until now every resend carried the marker.
    op.execute(sa.text('UPDATE delivery SET marked = resend WHERE msgid IS NOT NULL'))
    # Rows claimed before this revision: when first is unknown, and their creation is the
    # earliest it can have been (the anchor that marks a resend soonest).
    op.execute(sa.text('UPDATE delivery SET first_claimed_at = created_at WHERE attempts > 0 OR resend'))


def downgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('first_claimed_at')
        batch_op.drop_column('marked')
