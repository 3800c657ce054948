"""Threading messages as RFC 5256 THREAD defines it (ORDEREDSUBJECT and REFERENCES), below
the front-ends so the IMAP server and the webmail show the same conversations.

The API: :func:`thread_orderedsubject` and :func:`thread_references` take the
:class:`~mailstore.sorting.SortInfo` of the messages (:func:`mailstore.sorting.load_infos`)
and return a list of :class:`Node` trees, in the order RFC 5256 §4 presents the threads;
a node's ``uid`` is None for a dummy (a message referenced but not in the set) and its
children are in order. :func:`thread_folder` does it all for a folder (for the webmail).

Sent dates are those of SORT DATE (RFC 5256 §2.2); ties are broken by mailbox order
(ascending UID). Base subjects are compared with the collation given (i;ascii-casemap, the
RFC 5256 default, unless told otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailstore.search import FolderScope, search_rows
from mailstore.searchkeys import SearchAll, SearchKey
from mailstore.sorting import COLLATIONS, SortInfo, base_subject, load_infos
from mailstore.store import MailStore

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


@dataclass(eq=False, slots=True)
class Node:
    """A message of a thread (``info`` None for a dummy) and its replies, in order."""

    info: SortInfo | None = None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    @property
    def uid(self) -> int | None:
        return None if self.info is None else self.info.uid

    def first_date(self) -> tuple[float, int]:
        """The sort position of the node: its message's sent date and UID, or those of its
        first child for a dummy (RFC 5256 §4 REFERENCES steps 4 and 6)."""
        if self.info is not None:
            return self.info.sent, self.info.uid
        return self.children[0].first_date() if self.children else (0.0, 0)

    def subject(self) -> SortInfo | None:
        """The message whose subject names the node (its own, or its first child's)."""
        if self.info is not None:
            return self.info
        return self.children[0].subject() if self.children else None


def _by_date(nodes: list[Node]) -> None:
    nodes.sort(key=Node.first_date)


def thread_orderedsubject(infos: Sequence[SortInfo],
                          collation: str = "i;ascii-casemap") -> list[Node]:
    """RFC 5256 §4 ORDEREDSUBJECT: the messages sorted by base subject then sent date; each
    run of one base subject is a thread whose first message is the parent of all the
    others (siblings, by sent date); threads are ordered by their first message's date."""
    collate = COLLATIONS[collation]
    groups: dict[str, Node] = {}
    for info in sorted(infos, key=lambda i: (collate(base_subject(i.subject)[0]), i.sent,
                                              i.uid)):
        key = collate(base_subject(info.subject)[0])
        root = groups.get(key)
        if root is None:
            groups[key] = Node(info)
        else:
            root.children.append(Node(info, root))
    roots = list(groups.values())
    _by_date(roots)
    return roots


def _is_ancestor(node: Node, other: Node) -> bool:
    """Whether ``node`` is ``other`` or one of its ancestors."""
    walk: Node | None = other
    while walk is not None:
        if walk is node:
            return True
        walk = walk.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def thread_references(infos: Sequence[SortInfo],
                      collation: str = "i;ascii-casemap") -> list[Node]:
    """RFC 5256 §4 REFERENCES, step by step (numbers as in the RFC)."""
    collate = COLLATIONS[collation]
    table: dict[str, Node] = {}
    # (1) One container per Message-ID; a message without one, or with one already seen,
    # gets a container of its own (RFC 5256: "treated as if it had a unique Message-ID").
    for info in sorted(infos, key=lambda i: i.uid):
        node: Node | None = table.get(info.message_id) if info.message_id else None
        if node is None or node.info is not None:
            node = Node(info)
            if info.message_id and info.message_id not in table:
                table[info.message_id] = node
            else:
                table[f"\x00{info.uid}"] = node
        else:
            node.info = info  # a dummy created by an earlier reference
        # (1A) Link the references in order, parent before child, never changing an
        # existing parent and never making a loop.
        previous: Node | None = None
        for ref in info.references:
            ref_node = table.get(ref)
            if ref_node is None:
                ref_node = table[ref] = Node()
            if (previous is not None and ref_node.parent is None
                    and not _is_ancestor(ref_node, previous)):
                _link(previous, ref_node)
            previous = ref_node
        # (1B) The last reference is the message's parent (the most recent link wins),
        # unless that would make a loop.
        if previous is not None and previous is not node and not _is_ancestor(node, previous):
            _link(previous, node)
        elif previous is None and node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
    # (2) The root set.
    roots = [n for n in table.values() if n.parent is None]
    # (3) Prune dummies.
    roots = _prune(roots, is_root=True)
    for n in roots:
        n.parent = None
    # (4) Sort the root set by sent date (a dummy by its first child's, once sorted).
    for n in roots:
        if n.info is None:
            _by_date(n.children)
    _by_date(roots)
    # (5) Merge threads with the same base subject.
    roots = _group_by_subject(roots, collate)
    # (6) Sort the children of every node, at every level, by sent date.
    _sort_all(roots)
    _by_date(roots)
    return roots


def _prune(nodes: list[Node], *, is_root: bool) -> list[Node]:
    """RFC 5256 §4 REFERENCES step 3: dummies without children are removed; a dummy's
    children are promoted to its level, except for a root dummy with several children
    (kept, so its messages stay one thread)."""
    out: list[Node] = []
    for node in nodes:
        node.children = _prune(node.children, is_root=False)
        for child in node.children:
            child.parent = node
        if node.info is not None:
            out.append(node)
        elif not node.children:
            continue
        elif is_root and len(node.children) > 1:
            out.append(node)
        else:
            out.extend(node.children)
    return out


def _group_by_subject(roots: list[Node], collate: Callable[[str], str]) -> list[Node]:
    """RFC 5256 §4 REFERENCES step 5."""
    def subject_of(node: Node) -> tuple[str, bool]:
        info = node.subject()
        base, refwd = base_subject(info.subject if info is not None else "")
        return collate(base), refwd

    # (5A, 5B) The subject table: one root per base subject, preferring a dummy to a
    # message and a message whose subject is not a reply or forward to one that is.
    subjects: dict[str, Node] = {}
    for node in roots:
        key, refwd = subject_of(node)
        if not key:
            continue
        held = subjects.get(key)
        if held is None or (held.info is not None and node.info is None) or (
                held.info is not None and node.info is not None
                and subject_of(held)[1] and not refwd):
            subjects[key] = node
    # (5C) Merge every other root with the same base subject into the one in the table.
    out = list(roots)
    for node in roots:
        if node.parent is not None:
            continue  # already merged under a dummy
        key, refwd = subject_of(node)
        held = subjects.get(key) if key else None
        if held is None or held is node:
            continue
        if held.info is None and node.info is None:
            for child in list(node.children):
                _link(held, child)  # node, now childless, is dropped below
        elif held.info is None or (refwd and not subject_of(held)[1]):
            _link(held, node)
        else:
            dummy = Node()
            out[out.index(held)] = dummy
            _link(dummy, held)
            _link(dummy, node)
            subjects[key] = dummy
    return [n for n in out if n.parent is None and (n.info is not None or n.children)]


def _sort_all(nodes: list[Node]) -> None:
    for node in nodes:
        _sort_all(node.children)
        _by_date(node.children)


async def thread_folder(store: MailStore, folder_id: int, algorithm: str,
                        criteria: SearchKey | None = None,
                        collation: str = "i;ascii-casemap") -> list[Node]:
    """The threads of the folder's messages that match ``criteria`` (all when None).
    The caller checks the right to read the folder first."""
    scope = await FolderScope.of(store, folder_id)
    rows = await search_rows(store, scope, criteria or SearchAll())
    infos = await load_infos(store, folder_id, [r.uid for r in rows])
    if algorithm == "ORDEREDSUBJECT":
        return thread_orderedsubject(infos, collation)
    if algorithm == "REFERENCES":
        return thread_references(infos, collation)
    raise ValueError(f"unknown threading algorithm {algorithm!r}")
