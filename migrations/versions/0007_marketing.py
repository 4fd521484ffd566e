"""the marketing half: audiences, pushes, their deliveries and mass jobs, the monthly mass
allowance, subscription grants, followers' last interaction; channels, their WeChat codes,
mini-program arrivals, poster batches

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:41:49.034499

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    _index_live_tables_for_attribution()
    _index_follower_for_audiences()
    op.create_table('audience',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audience'))
    )
    op.create_table('mass_allowance',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.CheckConstraint('used >= 0', name=op.f('ck_mass_allowance_used_not_negative')),
    sa.PrimaryKeyConstraint('openid', 'month', name=op.f('pk_mass_allowance'))
    )
    op.create_table('miniapp_arrival',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('unionid', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_miniapp_arrival'))
    )
    with op.batch_alter_table('miniapp_arrival', schema=None) as batch_op:
        batch_op.create_index('ix_miniapp_arrival_channel_arrived_at', ['channel', 'arrived_at'], unique=False)

    op.create_table('poster_batch',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('branch', sa.String(length=32), nullable=False),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('chunks_done', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'building', 'ready', 'failed')", name=op.f('ck_poster_batch_state_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_poster_batch'))
    )
    op.create_table('subscription_grant',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('template_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('accept', 'reject')", name=op.f('ck_subscription_grant_status_known')),
    sa.PrimaryKeyConstraint('openid', 'template_id', name=op.f('pk_subscription_grant'))
    )
    with op.batch_alter_table('subscription_grant', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_grant_template_id_status', ['template_id', 'status'], unique=False)

    op.create_table('channel',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=32), nullable=True),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(kind = 'manager') = (staff_id IS NOT NULL)", name=op.f('ck_channel_manager_staff')),
    sa.CheckConstraint("kind IN ('branch', 'manager', 'campaign')", name=op.f('ck_channel_kind_known')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_channel_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel')),
    sa.UniqueConstraint('code', name=op.f('uq_channel_code'))
    )
    with op.batch_alter_table('channel', schema=None) as batch_op:
        batch_op.create_index('ix_channel_branch_code', ['branch', 'code'], unique=False)
        batch_op.create_index(batch_op.f('ix_channel_staff_id'), ['staff_id'], unique=False)

    op.create_table('push',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('audience_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rate_per_s', sa.Integer(), nullable=False),
    sa.Column('quiet_from', sa.String(length=5), nullable=True),
    sa.Column('quiet_to', sa.String(length=5), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('pause_reason', sa.String(length=32), nullable=True),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('approved_by', sa.String(length=32), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('mass', 'custom', 'subscribe')", name=op.f('ck_push_channel_known')),
    sa.CheckConstraint("state IN ('pending_approval', 'scheduled', 'sending', 'paused', 'done', 'cancelled')", name=op.f('ck_push_state_known')),
    sa.CheckConstraint('approved_by IS NULL OR approved_by <> created_by', name=op.f('ck_push_four_eyes')),
    sa.CheckConstraint('rate_per_s >= 1', name=op.f('ck_push_rate_positive')),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], name=op.f('fk_push_audience_id_audience')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push'))
    )
    with op.batch_alter_table('push', schema=None) as batch_op:
        batch_op.create_index('ix_push_state_send_at', ['state', 'send_at'], unique=False)

    op.create_table('channel_code',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ticket', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('image', sa.LargeBinary(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('oa_permanent', 'oa_temporary', 'miniapp')", name=op.f('ck_channel_code_kind_known')),
    sa.ForeignKeyConstraint(['channel_id'], ['channel.id'], name=op.f('fk_channel_code_channel_id_channel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_code'))
    )
    with op.batch_alter_table('channel_code', schema=None) as batch_op:
        batch_op.create_index('ix_channel_code_kind', ['kind'], unique=False)
        batch_op.create_index('uq_channel_code_lasting', ['channel_id', 'kind'], unique=True, sqlite_where=sa.text("kind <> 'oa_temporary'"), postgresql_where=sa.text("kind <> 'oa_temporary'"))

    op.create_table('push_mass_job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('push_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('client_msg_id', sa.String(length=64), nullable=False),
    sa.Column('msg_id', sa.BigInteger(), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=64), nullable=True),
    sa.Column('total_count', sa.Integer(), nullable=True),
    sa.Column('filter_count', sa.Integer(), nullable=True),
    sa.Column('sent_count', sa.Integer(), nullable=True),
    sa.Column('error_count', sa.Integer(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['push_id'], ['push.id'], name=op.f('fk_push_mass_job_push_id_push')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_mass_job')),
    sa.UniqueConstraint('client_msg_id', name=op.f('uq_push_mass_job_client_msg_id')),
    sa.UniqueConstraint('msg_id', name=op.f('uq_push_mass_job_msg_id'))
    )
    with op.batch_alter_table('push_mass_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_mass_job_push_id'), ['push_id'], unique=False)

    op.create_table('push_delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('push_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('mass_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'claimed', 'sent', 'skipped', 'failed')", name=op.f('ck_push_delivery_state_known')),
    sa.ForeignKeyConstraint(['mass_job_id'], ['push_mass_job.id'], name=op.f('fk_push_delivery_mass_job_id_push_mass_job')),
    sa.ForeignKeyConstraint(['push_id'], ['push.id'], name=op.f('fk_push_delivery_push_id_push')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_delivery')),
    sa.UniqueConstraint('push_id', 'openid', name=op.f('uq_push_delivery_push_id'))
    )
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_push_delivery_mass_job_id', ['mass_job_id'], unique=False)
        batch_op.create_index('ix_push_delivery_claimed_at', ['claimed_at'], unique=False, sqlite_where=sa.text("state = 'claimed'"), postgresql_where=sa.text("state = 'claimed'"))
        batch_op.create_index('ix_push_delivery_push_id_state_id', ['push_id', 'state', 'id'], unique=False)

    op.create_table('attribution_person',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('oa_openid', sa.String(length=64), nullable=True),
    sa.Column('mp_openid', sa.String(length=64), nullable=True),
    sa.Column('unionid', sa.String(length=64), nullable=True),
    sa.Column('holder_id', sa.BigInteger(), nullable=True),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_transaction_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('redemptions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attribution_person')),
    sa.UniqueConstraint('mp_openid', name=op.f('uq_attribution_person_mp_openid')),
    sa.UniqueConstraint('oa_openid', name=op.f('uq_attribution_person_oa_openid'))
    )
    with op.batch_alter_table('attribution_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_person_holder_id'), ['holder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_person_unionid'), ['unionid'], unique=False)
        batch_op.create_index('ix_attribution_person_unionid_pending', ['arrived_at'], unique=False, sqlite_where=sa.text('unionid IS NULL AND oa_openid IS NOT NULL'), postgresql_where=sa.text('unionid IS NULL AND oa_openid IS NOT NULL'))

    op.create_table('channel_day',
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('scans', sa.Integer(), nullable=False),
    sa.Column('follows', sa.Integer(), nullable=False),
    sa.Column('binds', sa.Integer(), nullable=False),
    sa.Column('transacting', sa.Integer(), nullable=False),
    sa.Column('redemptions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'day', name=op.f('pk_channel_day'))
    )
    with op.batch_alter_table('channel_day', schema=None) as batch_op:
        batch_op.create_index('ix_channel_day_day', ['day'], unique=False)

    op.create_table('channel_month',
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('scans', sa.Integer(), nullable=False),
    sa.Column('follows', sa.Integer(), nullable=False),
    sa.Column('binds', sa.Integer(), nullable=False),
    sa.Column('transacting', sa.Integer(), nullable=False),
    sa.Column('redemptions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'month', name=op.f('pk_channel_month'))
    )
    # Empty: the first refresh of the funnel's facts (campaigns.attribution.facts) builds
    # them from the live tables, set-based, whenever it first runs.
    op.create_table('attribution_mark',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('final_id', sa.BigInteger(), nullable=False),
    sa.Column('candidate_id', sa.BigInteger(), nullable=True),
    sa.Column('candidate_xmax', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_attribution_mark'))
    )

    if op.get_bind().dialect.name != 'postgresql':  # PostgreSQL: _index_follower_for_audiences
        with op.batch_alter_table('follower', schema=None) as batch_op:
            batch_op.add_column(sa.Column('last_interaction_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.create_index('ix_follower_last_interaction_at', ['last_interaction_at'], unique=False)



def _index_live_tables_for_attribution():
    """follower and binding hold millions of rows and take writes all the time; the funnel
    of a channel (campaigns.attribution.funnel) needs a follower's first scene with its time,
    and every binding an openid ever had (the partial unique index holds active ones only).

    As in 0006: on PostgreSQL this runs first, outside the migration's transaction, with the
    indexes built CONCURRENTLY (a plain build would hold off follows and bindings for its
    whole length) and every statement safe to rerun. The new column changes only the
    catalogue; followers who came through a scene before it get the time of their follow,
    in batches so that no statement locks many rows for long.
    """
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('follower', schema=None) as batch_op:
            batch_op.add_column(sa.Column('first_scene_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.create_index('ix_follower_first_scene_first_scene_at', ['first_scene', 'first_scene_at'], unique=False)
        op.execute('UPDATE follower SET first_scene_at = COALESCE(subscribed_at, created_at) '
                   'WHERE first_scene IS NOT NULL')
        with op.batch_alter_table('binding', schema=None) as batch_op:
            batch_op.create_index('ix_binding_app_openid', ['app', 'openid'], unique=False)
        return
    with op.get_context().autocommit_block():
        op.execute('ALTER TABLE follower ADD COLUMN IF NOT EXISTS first_scene_at TIMESTAMP WITH TIME ZONE')
        while op.get_bind().execute(sa.text(
                'UPDATE follower SET first_scene_at = COALESCE(subscribed_at, created_at) '
                'WHERE id IN (SELECT id FROM follower WHERE first_scene IS NOT NULL '
                'AND first_scene_at IS NULL LIMIT 10000)')).rowcount:
            pass
        op.create_index('ix_follower_first_scene_first_scene_at', 'follower',
                        ['first_scene', 'first_scene_at'], unique=False,
                        postgresql_concurrently=True, if_not_exists=True)
        op.create_index('ix_binding_app_openid', 'binding', ['app', 'openid'], unique=False,
                        postgresql_concurrently=True, if_not_exists=True)


def _index_follower_for_audiences():
    """Audiences' active_within_hours is a range of follower.last_interaction_at. On
    PostgreSQL the two columns change only the catalogue and the index is built
    CONCURRENTLY, as above, outside the migration's transaction; SQLite gets both in the
    follower batch further down."""
    if op.get_bind().dialect.name != 'postgresql':
        return
    with op.get_context().autocommit_block():
        op.execute('ALTER TABLE follower ADD COLUMN IF NOT EXISTS last_interaction_at TIMESTAMP WITH TIME ZONE')
        op.execute('ALTER TABLE follower ADD COLUMN IF NOT EXISTS last_message_at TIMESTAMP WITH TIME ZONE')
        op.create_index('ix_follower_last_interaction_at', 'follower', ['last_interaction_at'],
                        unique=False, postgresql_concurrently=True, if_not_exists=True)


def _drop_live_table_indexes_for_attribution():
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('binding', schema=None) as batch_op:
            batch_op.drop_index('ix_binding_app_openid')
        with op.batch_alter_table('follower', schema=None) as batch_op:
            batch_op.drop_index('ix_follower_first_scene_first_scene_at')
            batch_op.drop_column('first_scene_at')
        return
    with op.get_context().autocommit_block():
        op.drop_index('ix_binding_app_openid', table_name='binding',
                      postgresql_concurrently=True, if_exists=True)
        op.drop_index('ix_follower_first_scene_first_scene_at', table_name='follower',
                      postgresql_concurrently=True, if_exists=True)
        op.execute('ALTER TABLE follower DROP COLUMN IF EXISTS first_scene_at')


def downgrade():
    with op.batch_alter_table('follower', schema=None) as batch_op:
        batch_op.drop_index('ix_follower_last_interaction_at')
        batch_op.drop_column('last_message_at')
        batch_op.drop_column('last_interaction_at')

    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_push_delivery_claimed_at', sqlite_where=sa.text("state = 'claimed'"), postgresql_where=sa.text("state = 'claimed'"))
        batch_op.drop_index('ix_push_delivery_push_id_state_id')
        batch_op.drop_index('ix_push_delivery_mass_job_id')

    op.drop_table('push_delivery')
    op.drop_table('attribution_mark')
    op.drop_table('channel_month')
    with op.batch_alter_table('channel_day', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_day_day')

    op.drop_table('channel_day')
    with op.batch_alter_table('attribution_person', schema=None) as batch_op:
        batch_op.drop_index('ix_attribution_person_unionid_pending', sqlite_where=sa.text('unionid IS NULL AND oa_openid IS NOT NULL'), postgresql_where=sa.text('unionid IS NULL AND oa_openid IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_attribution_person_unionid'))
        batch_op.drop_index(batch_op.f('ix_attribution_person_holder_id'))

    op.drop_table('attribution_person')
    with op.batch_alter_table('push_mass_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_mass_job_push_id'))

    op.drop_table('push_mass_job')
    with op.batch_alter_table('channel_code', schema=None) as batch_op:
        batch_op.drop_index('uq_channel_code_lasting', sqlite_where=sa.text("kind <> 'oa_temporary'"), postgresql_where=sa.text("kind <> 'oa_temporary'"))
        batch_op.drop_index('ix_channel_code_kind')

    op.drop_table('channel_code')
    with op.batch_alter_table('push', schema=None) as batch_op:
        batch_op.drop_index('ix_push_state_send_at')

    op.drop_table('push')
    with op.batch_alter_table('channel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_staff_id'))
        batch_op.drop_index('ix_channel_branch_code')

    op.drop_table('channel')
    with op.batch_alter_table('subscription_grant', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_grant_template_id_status')

    op.drop_table('subscription_grant')
    op.drop_table('poster_batch')
    with op.batch_alter_table('miniapp_arrival', schema=None) as batch_op:
        batch_op.drop_index('ix_miniapp_arrival_channel_arrived_at')

    op.drop_table('miniapp_arrival')
    op.drop_table('mass_allowance')
    op.drop_table('audience')
    _drop_live_table_indexes_for_attribution()
