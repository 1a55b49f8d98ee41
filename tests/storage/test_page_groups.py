"""The store keeps which session each alert group is attached to, and each session's status, on
both backends (a restarted server, or another server on the same PostgreSQL, finds them)."""

from __future__ import annotations

import pytest

from engine.store import PageGroup, Store

KEY = '{}/{severity="critical"}:{alertname="KubeContainerOOMKilled"}'


async def test_a_group_is_attached_to_its_session_and_found_again(any_store: Store, store_target: str):
    assert await any_store.page_group(KEY) is None
    group = PageGroup(
        KEY, "s1", "alertmanager", "firing", "2026-12-05T03:00:00+00:00", "2026-12-05T03:00:00+00:00", ["fp1"], 1
    )
    await any_store.put_page_group(group)
    group.status, group.fingerprints, group.pages = "resolved", ["fp1", "fp2"], 2
    await any_store.put_page_group(group)
    await any_store.put_page_group(PageGroup("generic:db-disk", "s2", "generic", "firing", "t", "t", [], 1))
    await any_store.close()

    async with Store(store_target) as again:  # another process on the same database
        got = await again.page_group(KEY)
        assert got == PageGroup(
            KEY,
            "s1",
            "alertmanager",
            "resolved",
            "2026-12-05T03:00:00+00:00",
            "2026-12-05T03:00:00+00:00",
            ["fp1", "fp2"],
            2,
        )
        assert (await again.page_group("generic:db-disk")).session_id == "s2"  # type: ignore[union-attr]
        assert await again.count("page_groups") == 2


async def test_a_session_is_marked_open_then_resolved(any_store: Store):
    await any_store.create_session("s1", model="scripted")
    assert await any_store.get_status("s1") is None  # an ordinary conversation has no status
    await any_store.set_status("s1", "open", "KubeContainerOOMKilled: api OOMKilled")
    assert (await any_store.get_status("s1"))[0] == "open"  # type: ignore[index]
    await any_store.set_status("s1", "resolved", "KubeContainerOOMKilled: api OOMKilled")
    status, since, detail = await any_store.get_status("s1")  # type: ignore[misc]
    assert status == "resolved" and since and detail.startswith("KubeContainerOOMKilled")
    with pytest.raises(ValueError, match="open, resolved"):
        await any_store.set_status("s1", "closed")
