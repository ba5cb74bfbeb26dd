"""Storage buckets and the policies that tie storage objects to their project's owner."""

from __future__ import annotations

import asyncpg
import pytest

from tests.schema.world import (
    ACTORS,
    ALICE,
    ANON,
    BUCKETS,
    OWNERS,
    REACH,
    Actor,
    Owner,
    acting_as,
    object_name,
    row_id,
)


async def test_the_four_buckets_exist_and_only_thumbnails_is_public(world: asyncpg.Connection) -> None:
    """The four buckets exist, only thumbnails is public, and each limits its size and file types."""
    rows = await world.fetch(
        "select id, name, public, allowed_mime_types, file_size_limit from storage.buckets"
    )
    buckets = {row["id"]: row for row in rows}
    assert set(buckets) == set(BUCKETS)
    assert {key: row["public"] for key, row in buckets.items()} == {
        "clips": False,
        "audio": False,
        "exports": False,
        "thumbnails": True,
    }
    assert buckets["clips"]["allowed_mime_types"] == ["video/*"]
    assert buckets["audio"]["allowed_mime_types"] == ["audio/*"]
    assert buckets["thumbnails"]["allowed_mime_types"] == ["image/*"]
    assert "video/*" in buckets["exports"]["allowed_mime_types"]
    assert all(row["name"] == key and row["file_size_limit"] > 0 for key, row in buckets.items())


@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
async def test_objects_are_visible_to_their_projects_owner(world: asyncpg.Connection, actor: Actor) -> None:
    """Each role sees the storage objects of the projects it owns and no others."""
    async with acting_as(world, actor):
        names = {record["name"] for record in await world.fetch("select name from storage.objects")}
    assert names == {object_name(owner) for owner in REACH[actor.name]}


@pytest.mark.parametrize("bucket", BUCKETS)
@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
async def test_uploads_go_only_into_ones_own_project_folder(
    world: asyncpg.Connection, actor: Actor, bucket: str
) -> None:
    """A role may create objects under projects/{id}/ only for the projects it owns, in every bucket."""
    allowed: set[Owner] = set()
    for owner in OWNERS:
        try:
            async with acting_as(world, actor):
                await world.execute(
                    "insert into storage.objects (bucket_id, name) values ($1, $2)",
                    bucket,
                    object_name(owner, "new/upload.bin"),
                )
            allowed.add(owner)
        except asyncpg.InsufficientPrivilegeError:
            pass
    assert allowed == REACH[actor.name]


@pytest.mark.parametrize("operation", ["update", "delete"])
@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
async def test_changing_objects_follows_the_project(
    world: asyncpg.Connection, actor: Actor, operation: str
) -> None:
    """A role may update or delete only the objects of the projects it owns."""
    reached: set[Owner] = set()
    for owner in OWNERS:
        statement = (
            "update storage.objects set metadata = '{\"size\": 1}' where name = $1 returning id"
            if operation == "update"
            else "delete from storage.objects where name = $1 returning id"
        )
        async with acting_as(world, actor):
            if await world.fetch(statement, object_name(owner)):
                reached.add(owner)
    assert reached == REACH[actor.name]


async def test_an_object_cannot_be_moved_into_another_users_project(world: asyncpg.Connection) -> None:
    """Renaming an object into the folder of another owner's project is refused."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with acting_as(world, ALICE):
            await world.execute(
                "update storage.objects set name = $2 where name = $1",
                object_name("alice"),
                object_name("bob"),
            )


@pytest.mark.parametrize(
    "name",
    [
        "projects/not-a-uuid/clips/a.mp4",
        "projects//clips/a.mp4",
        "projects",
        "elsewhere/{anon}/clips/a.mp4",
        "{anon}/clips/a.mp4",
        "projects/{anon}x/clips/a.mp4",
    ],
)
async def test_badly_named_objects_are_refused_without_errors(world: asyncpg.Connection, name: str) -> None:
    """Objects outside projects/{uuid}/ are refused by the policy, not by a failing uuid cast."""
    name = name.format(anon=row_id("projects", "anon"))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with acting_as(world, ANON):
            await world.execute("insert into storage.objects (bucket_id, name) values ('clips', $1)", name)


async def test_reading_past_badly_named_objects_works(world: asyncpg.Connection) -> None:
    """A badly named object stored by the service is simply invisible to anon, not an error for the query."""
    transaction = world.transaction()
    await transaction.start()
    try:
        await world.execute(
            "insert into storage.objects (bucket_id, name) values"
            " ('clips', 'projects/not-a-uuid/a.mp4'), ('clips', 'loose.mp4'), ('audio', 'projects/zz/')"
        )
        await world.execute("set local role anon")
        await world.execute("select set_config('request.jwt.claims', '{\"role\": \"anon\"}', true)")
        names = [record["name"] for record in await world.fetch("select name from storage.objects")]
    finally:
        await transaction.rollback()
    assert names == [object_name("anon")]


async def test_other_buckets_are_not_opened_by_the_project_policies(world: asyncpg.Connection) -> None:
    """A bucket other than the studio's four gets nothing from these policies, even under projects/{id}/."""
    transaction = world.transaction()
    await transaction.start()
    try:
        await world.execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        await world.execute("set local role anon")
        await world.execute("select set_config('request.jwt.claims', '{\"role\": \"anon\"}', true)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await world.execute(
                "insert into storage.objects (bucket_id, name) values ('avatars', $1)", object_name("anon")
            )
    finally:
        await transaction.rollback()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("projects/{id}/clips/a.mp4", "{id}"),
        ("projects/{upper}/final/film.mp4", "{id}"),
        ("projects/{id}/a.mp4", "{id}"),
        ("projects/{id}", None),
        ("projects/not-a-uuid/a.mp4", None),
        ("other/{id}/a.mp4", None),
        ("", None),
    ],
)
async def test_object_project_id_parses_only_project_folders(
    world: asyncpg.Connection, name: str, expected: str | None
) -> None:
    """storage_object_project_id returns the uuid of projects/{uuid}/… names and NULL for anything else."""
    project = str(row_id("projects", "anon"))
    found = await world.fetchval(
        "select public.storage_object_project_id($1)", name.format(id=project, upper=project.upper())
    )
    assert (None if found is None else str(found)) == (
        None if expected is None else expected.format(id=project)
    )
