"""benefit campaigns: campaigns, options, voucher codes, redemptions; points spent in the
ledger; the index of a holder's transactions over time (campaign spend)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:01:05.044158

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    _change_live_tables()
    op.create_table('campaign',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=128), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('eligibility', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('draft', 'published')", name=op.f('ck_campaign_state_known')),
    sa.CheckConstraint('starts_at < ends_at', name=op.f('ck_campaign_starts_before_end')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign')),
    sa.UniqueConstraint('slug', name=op.f('uq_campaign_slug'))
    )
    op.create_table('campaign_option',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=128), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('limit_per_holder', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint('points >= 0', name=op.f('ck_campaign_option_points_not_negative')),
    sa.CheckConstraint('limit_per_holder IS NULL OR limit_per_holder >= 1', name=op.f('ck_campaign_option_limit_positive')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_option_campaign_id_campaign')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_option')),
    sa.UniqueConstraint('campaign_id', 'key', name=op.f('uq_campaign_option_campaign_id'))
    )
    op.create_table('voucher_code',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('option_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('code_index', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['option_id'], ['campaign_option.id'], name=op.f('fk_voucher_code_option_id_campaign_option')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_voucher_code')),
    sa.UniqueConstraint('option_id', 'code_index', name=op.f('uq_voucher_code_option_id'))
    )
    with op.batch_alter_table('voucher_code', schema=None) as batch_op:
        batch_op.create_index('ix_voucher_code_in_stock', ['option_id', 'id'], unique=False, sqlite_where=sa.text('claimed_at IS NULL'), postgresql_where=sa.text('claimed_at IS NULL'))

    op.create_table('redemption',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('holder_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('option_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points_spent', sa.Integer(), nullable=False),
    sa.Column('points_balance', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_redemption_campaign_id_campaign')),
    sa.ForeignKeyConstraint(['code_id'], ['voucher_code.id'], name=op.f('fk_redemption_code_id_voucher_code')),
    sa.ForeignKeyConstraint(['holder_id'], ['card_holder.id'], name=op.f('fk_redemption_holder_id_card_holder')),
    sa.ForeignKeyConstraint(['option_id'], ['campaign_option.id'], name=op.f('fk_redemption_option_id_campaign_option')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redemption')),
    sa.UniqueConstraint('code_id', name=op.f('uq_redemption_code_id')),
    sa.UniqueConstraint('holder_id', 'request_id', name=op.f('uq_redemption_holder_id'))
    )
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.create_index('ix_redemption_campaign_id_redeemed_at', ['campaign_id', 'redeemed_at'], unique=False)
        batch_op.create_index('ix_redemption_holder_id_option_id', ['holder_id', 'option_id'], unique=False)
        batch_op.create_index('ix_redemption_option_id', ['option_id'], unique=False)



def _change_live_tables():
    """card_transaction and point_entry hold millions of rows in production and take the
    feed's writes all the time: their new index (a holder's transactions over time, for
    campaign spend) and the ledger's new column and unique index.

    On PostgreSQL this runs first and outside the migration's transaction: the indexes are
    built CONCURRENTLY, since a plain CREATE INDEX would hold off the feed's inserts for the
    whole build; the column and the wider reason change only the catalogue. Every statement
    is safe to run again (IF [NOT] EXISTS), so an upgrade that fails later, and rolls the
    rest back, can simply be rerun. (A CONCURRENTLY build that was interrupted leaves an
    INVALID index behind: drop it before rerunning.) The index on (holder_id, occurred_at)
    serves lookups by holder alone too, so the one on holder_id goes.
    """
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('card_transaction', schema=None) as batch_op:
            batch_op.create_index('ix_card_transaction_holder_id_occurred_at', ['holder_id', 'occurred_at'], unique=False)
            batch_op.drop_index('ix_card_transaction_holder_id')
        with op.batch_alter_table('point_entry', schema=None) as batch_op:
            batch_op.add_column(sa.Column('reference', sa.String(length=64), nullable=True))
            batch_op.alter_column('reason', existing_type=sa.VARCHAR(length=64),
                                  type_=sa.String(length=128), existing_nullable=False)
            batch_op.create_index('uq_point_entry_kind_reference', ['kind', 'reference'], unique=True)
        return
    with op.get_context().autocommit_block():
        op.execute('ALTER TABLE point_entry ADD COLUMN IF NOT EXISTS reference VARCHAR(64)')
        op.execute('ALTER TABLE point_entry ALTER COLUMN reason TYPE VARCHAR(128)')
        op.create_index('ix_card_transaction_holder_id_occurred_at', 'card_transaction',
                        ['holder_id', 'occurred_at'], unique=False,
                        postgresql_concurrently=True, if_not_exists=True)
        op.drop_index('ix_card_transaction_holder_id', table_name='card_transaction',
                      postgresql_concurrently=True, if_exists=True)
        op.create_index('uq_point_entry_kind_reference', 'point_entry', ['kind', 'reference'],
                        unique=True, postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    with op.batch_alter_table('point_entry', schema=None) as batch_op:
        batch_op.drop_index('uq_point_entry_kind_reference')
    with op.batch_alter_table('card_transaction', schema=None) as batch_op:
        batch_op.create_index('ix_card_transaction_holder_id', ['holder_id'], unique=False)
        batch_op.drop_index('ix_card_transaction_holder_id_occurred_at')
    with op.batch_alter_table('point_entry', schema=None) as batch_op:
        batch_op.alter_column('reason',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=False)
        batch_op.drop_column('reference')

    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.drop_index('ix_redemption_option_id')
        batch_op.drop_index('ix_redemption_holder_id_option_id')
        batch_op.drop_index('ix_redemption_campaign_id_redeemed_at')

    op.drop_table('redemption')
    with op.batch_alter_table('voucher_code', schema=None) as batch_op:
        batch_op.drop_index('ix_voucher_code_in_stock', sqlite_where=sa.text('claimed_at IS NULL'), postgresql_where=sa.text('claimed_at IS NULL'))

    op.drop_table('voucher_code')
    op.drop_table('campaign_option')
    op.drop_table('campaign')
