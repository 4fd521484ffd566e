"""staff accounts, their API tokens, the append-only audit of staff actions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('branch', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('viewer', 'marketer', 'approver', 'admin', 'manager')", name=op.f('ck_staff_role')),
    sa.CheckConstraint("(role = 'manager') = (branch IS NOT NULL)", name=op.f('ck_staff_manager_branch')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_username'))
    )
    op.create_table('staff_token',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_token_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_staff_token_token_hash'))
    )
    with op.batch_alter_table('staff_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_token_staff_id'), ['staff_id'], unique=False)

    op.create_table('staff_action',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('username', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_action_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_action'))
    )
    with op.batch_alter_table('staff_action', schema=None) as batch_op:
        batch_op.create_index('ix_staff_action_staff_id_id', ['staff_id', 'id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # The staff audit trail is append-only in the production database itself.
        op.execute(
            "CREATE FUNCTION staff_action_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'staff_action is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER staff_action_append_only BEFORE UPDATE OR DELETE ON staff_action "
            "FOR EACH ROW EXECUTE FUNCTION staff_action_append_only()"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER staff_action_append_only ON staff_action")
        op.execute("DROP FUNCTION staff_action_append_only()")
    with op.batch_alter_table('staff_action', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_action_staff_id_id')

    op.drop_table('staff_action')
    with op.batch_alter_table('staff_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_token_staff_id'))

    op.drop_table('staff_token')
    op.drop_table('staff')
