"""The printable PDF of a receipt ("accusé de réception"), drawn with fpdf2.

The PDF says in French what :func:`storage.receipts.render_html` says: the message, its
sender and recipients, the times of submission, delivery and reading, the content SHA-256,
one line per proof record (with its ETSI EN 319 522-2 evidence type), and the signed
checkpoint covering the records. The verifiable document is the JSON receipt: it is attached
inside the PDF (an embedded file), so the printed copy and the checkable one travel together.

The text is set in DejaVu Sans when the Debian package ``fonts-dejavu-core`` is installed
(accents and internationalised addresses); otherwise in the PDF core font Helvetica, which
covers Latin-1 only (other characters become ``?``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fpdf import FPDF

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
KINDS_FR = {
    "submitted": "dépôt", "received": "reçu d'un autre opérateur", "relayed": "relayé",
    "delivered": "remis", "read": "lu", "dsn-sent": "avis de remise envoyé",
    "dsn-received": "avis de remise reçu", "mdn-sent": "avis de lecture envoyé",
    "mdn-received": "avis de lecture reçu", "bounced": "non remis", "purged": "purgé",
}


def _font(pdf: FPDF) -> tuple[str, bool]:
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu", True
    return "Helvetica", False


def render_pdf(doc: dict[str, Any]) -> bytes:
    """The receipt ``doc`` (from :func:`storage.receipts.build_receipt`) as PDF bytes."""
    s = doc["summary"]
    pdf = FPDF(format="A4")
    pdf.set_title(f"Accusé de réception {s.get('message_id') or ''}")
    pdf.set_creator("mssante-gateway")
    family, unicode_ok = _font(pdf)

    def text(value: Any) -> str:
        out = str(value) if value not in (None, "") else "—"
        return out if unicode_ok else out.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, "B", 16)
    pdf.cell(0, 10, text("Accusé de réception"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    rows = [
        ("Message", s.get("message_id")),
        ("Expéditeur", s.get("sender")),
        ("Destinataire", s.get("recipient") or ", ".join(s.get("recipients") or [])),
        ("Dépôt (UTC)", s.get("submitted_at")),
        ("Remise (UTC)", s.get("delivered_at")),
        ("Lecture (UTC)", s.get("read_at")),
        ("Empreinte SHA-256", s.get("content_sha256")),
    ]
    for label, value in rows:
        pdf.set_font(family, "B", 10)
        pdf.cell(60, 6, text(label))
        # the 64 hex digits of the SHA-256 fit on one line at 8 points
        pdf.set_font(family, "", 8 if label == "Empreinte SHA-256" else 10)
        pdf.multi_cell(0, 6, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, "B", 12)
    pdf.cell(0, 8, text("Preuves enregistrées"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 8)
    for e in s.get("events", []):
        kind = KINDS_FR.get(e["kind"], e["kind"])
        evidence = f" [{e['etsi_evidence']}]" if e.get("etsi_evidence") else ""
        pdf.multi_cell(0, 5, text(f"#{e['seq']}  {e['time']}  {kind}{evidence}  "
                                  f"{e.get('actor') or ''}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, "B", 12)
    pdf.cell(0, 8, text("Point de contrôle signé"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 7)
    pdf.multi_cell(0, 4, text(str(doc.get("checkpoint", "")).strip()),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(family, "", 8)
    pdf.multi_cell(0, 4, text(
        "Ce document résume un reçu vérifiable : le reçu JSON joint à ce PDF se vérifie "
        "hors ligne avec « mssante proofs verify-receipt FICHIER.json » ou la procédure "
        "de docs/proofs.md."), new_x="LMARGIN", new_y="NEXT")
    pdf.embed_file(basename="accuse-de-reception.json",
                   bytes=json.dumps(doc, indent=2, ensure_ascii=False).encode(),
                   desc="Reçu vérifiable (JSON)")
    return bytes(pdf.output())
