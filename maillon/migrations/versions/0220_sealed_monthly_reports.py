"""monthly reports: the PDF sealed at rest (the registry's ``RowSealed("id")``)

Reports made before this revision hold their PDF in clear: each is sealed here with the
deployment's key ring, its row's id as associated data (as ``REPORT_PDF`` does).

Revision ID: 0220
Revises: 0151
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maillon.shared.sealed import RowSealed, key_ring

revision = "0220"
down_revision = "0200"
branch_labels = None
depends_on = None

REPORTS = sa.table("monthly_reports", sa.column("id", sa.Integer), sa.column("pdf", sa.LargeBinary))
PDF = RowSealed("id")


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(REPORTS.c.id, REPORTS.c.pdf)).all()
    plain = [(row_id, bytes(pdf)) for row_id, pdf in rows if bytes(pdf).startswith(b"%PDF")]
    if plain:
        ring = key_ring()
        for row_id, pdf in plain:
            conn.execute(
                sa.update(REPORTS)
                .where(REPORTS.c.id == row_id)
                .values(pdf=PDF.seal(ring, pdf, str(row_id)))
            )


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(REPORTS.c.id, REPORTS.c.pdf)).all()
    if rows:
        ring = key_ring()
        for row_id, sealed in rows:
            conn.execute(
                sa.update(REPORTS)
                .where(REPORTS.c.id == row_id)
                .values(pdf=PDF.open(ring, bytes(sealed), str(row_id)))
            )
