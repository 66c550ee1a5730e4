"""ownership: uploaded blobs have an owner, co-owners accept, a place belongs to one owner set

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from teaclave_infer.domain.urls import UrlError, url_key

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_blobs_owner_id"), "blobs", ["owner_id"], unique=False)
    op.create_table(
        "places",
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("owners", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("url_key"),
    )
    with op.batch_alter_table("file_owners") as batch:
        batch.add_column(sa.Column("accepted", sa.Boolean(), nullable=False, server_default="1"))
    # The places of the files registered before, each with its first file's owners. (Blobs
    # uploaded before have no recorded uploader: they stay usable by the files already
    # registered on them, and cannot be registered again.)
    bind = op.get_bind()
    files = sa.table("files", sa.column("id", sa.String), sa.column("url", sa.Text))
    owners = sa.table(
        "file_owners", sa.column("file_id", sa.String), sa.column("user_id", sa.String)
    )
    places = sa.table("places", sa.column("url_key", sa.String), sa.column("owners", sa.Text))
    claimed: set[str] = set()
    for file_id, url in bind.execute(sa.select(files.c.id, files.c.url).order_by(files.c.id)):
        try:
            key = url_key(url)
        except UrlError:
            continue
        if key and key not in claimed:
            ids = bind.execute(sa.select(owners.c.user_id).where(owners.c.file_id == file_id))
            bind.execute(
                places.insert().values(url_key=key, owners=" ".join(sorted(i for (i,) in ids)))
            )
            claimed.add(key)


def downgrade() -> None:
    with op.batch_alter_table("file_owners") as batch:
        batch.drop_column("accepted")
    op.drop_table("places")
    op.drop_index(op.f("ix_blobs_owner_id"), table_name="blobs")
    op.drop_table("blobs")
