"""Property tests: any bytes give a view, and generated MIME trees give exact offsets."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail.sections import read_section, section_ranges
from mail.views import MessageView, build_view

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_pieces = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r\n\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/plain; name*0*=UTF-8''%C3; name*1=x\r\n",
        b'From: "a\\" (b" <@x,@y:c@d>, g: ;, (c) e@f\r\n',
        b"To: =?utf-8?q?=C3=A9?= <x@y>, <>, @, :;\r\n",
        b"Subject: \xe9\x00\r\n",
        b"Date: Mon, 32 Foo 99999 99:99 +9999\r\n",
        b" folded\r\n",
        b"text",
        b"\xff\xfe",
    ]
)


@FAST
@given(st.lists(st.one_of(_pieces, st.binary(max_size=20)), max_size=40))
def test_any_bytes_give_a_consistent_view(chunks: list[bytes]) -> None:
    raw = b"".join(chunks)
    view = build_view(raw)
    assert MessageView.from_json(view.to_json()) == view
    assert 0 <= view.text_start <= view.size == len(raw)
    for number, part in view.parts.items():
        assert 0 <= part.header_start <= part.header_end == part.body_start <= part.body_end
        assert part.body_end <= len(raw)
        for kind in ("", ".MIME", ".HEADER", ".TEXT"):
            for start, end in section_ranges(view, number + kind):
                assert 0 <= start <= end <= len(raw)
    assert view.envelope.startswith("(") and view.bodystructure.startswith("(")


_text = st.text(alphabet="abcXYZ 019.-", min_size=0, max_size=30).map(str.encode)


@st.composite
def _tree(draw: st.DrawFn, depth: int = 0) -> tuple[bytes, dict[str, bytes]]:
    """A MIME entity (header + body) and the expected bytes of each part number below it."""
    if depth < 3 and draw(st.booleans()):
        boundary = f"bnd{depth}-{draw(st.integers(0, 99))}"
        children = draw(st.lists(_tree_at(depth + 1), min_size=1, max_size=3))
        body = b"preamble\r\n"
        expected: dict[str, bytes] = {}
        for index, (child, inner) in enumerate(children, start=1):
            body += b"--" + boundary.encode() + b"\r\n" + child + b"\r\n"
            header_end = child.index(b"\r\n\r\n") + 4
            expected[str(index)] = child[header_end:]
            for key, value in inner.items():
                expected[f"{index}.{key}"] = value
        body += b"--" + boundary.encode() + b"--\r\nepilogue\r\n"
        header = f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
        return header + body, expected
    return b"Content-Type: text/plain\r\n\r\n" + draw(_text), {}


def _tree_at(depth: int) -> st.SearchStrategy[tuple[bytes, dict[str, bytes]]]:
    return _tree(depth)


@FAST
@given(_tree())
def test_generated_trees_give_exact_part_bytes(tree: tuple[bytes, dict[str, bytes]]) -> None:
    entity, expected = tree
    raw = b"Subject: gen\r\n" + entity
    view = build_view(raw)

    def read(start: int, end: int) -> bytes:
        return raw[start:end]

    for number, data in expected.items():
        if number:
            assert read_section(view, number, read) == data, number
