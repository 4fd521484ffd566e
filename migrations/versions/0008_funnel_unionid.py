"""the funnel no longer looks for followers' late unionids: their pending index goes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_PENDING = 'unionid IS NULL AND oa_openid IS NOT NULL'


def upgrade():
    with op.batch_alter_table('attribution_person', schema=None) as batch_op:
        batch_op.drop_index('ix_attribution_person_unionid_pending',
                            sqlite_where=sa.text(_PENDING), postgresql_where=sa.text(_PENDING))


def downgrade():
    with op.batch_alter_table('attribution_person', schema=None) as batch_op:
        batch_op.create_index('ix_attribution_person_unionid_pending', ['arrived_at'],
                              unique=False, sqlite_where=sa.text(_PENDING),
                              postgresql_where=sa.text(_PENDING))
