"""Both modes of ``syncd.studio`` refuse the same bad calls with the same code and the same words.

The renderer does not choose its mode: the environment does. A call that one mode refuses clearly must
not raise a bare ``ValueError`` in the other, nor pass there.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from syncd.rows import FIELD_DEPTH
from syncd.studio import Studio, StudioError, connect
from tests.supabase_mode.conftest import WAIT, Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

NAN = float("nan")
MISSING = "0f000000-0000-4000-8000-00000000dead"


@dataclass(frozen=True)
class Ids:
    """The rows every case may name."""

    project: str
    scene: str
    clip: str
    export: str


Case = Callable[[Studio, Ids], Awaitable[Any]]


def _nested(levels: int) -> dict[str, Any]:
    """``levels`` levels of objects (at least one): ``{"k": {"k": … 1}}``."""
    value: dict[str, Any] = {"k": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


CASES: dict[str, Case] = {
    "export progress NaN": lambda s, i: s.update_export(i.export, progress=NAN),
    "export progress infinite": lambda s, i: s.update_export(i.export, progress=float("inf")),
    "export progress Decimal": lambda s, i: s.update_export(i.export, progress=decimal.Decimal("0.5")),
    "export of no project": lambda s, i: s.create_export(MISSING, format="mp4"),
    "unknown export": lambda s, i: s.update_export(MISSING, progress=0.5),
    "settings holding a datetime": lambda s, i: s.update_project(
        i.project, settings={"at": datetime.datetime(2026, 1, 1)}
    ),
    "settings holding a set": lambda s, i: s.update_project(i.project, settings={"sizes": {1, 2}}),
    "settings holding NaN": lambda s, i: s.update_project(i.project, settings={"x": NAN}),
    "new project with NaN": lambda s, i: s.create_project("t", settings={"x": NAN}),
    "project without fields": lambda s, i: s.update_project(i.project),
    "clip duration NaN": lambda s, i: s.save_clip_record(
        project_id=i.project, scene_id=i.scene, provider="pika", file_url=None, prompt="p", duration=NAN
    ),
    "clip metadata bytes": lambda s, i: s.save_clip_record(
        project_id=i.project,
        scene_id=i.scene,
        provider="pika",
        file_url=None,
        prompt="p",
        metadata={"b": b"x"},
    ),
    "clip scene as a UUID object": lambda s, i: s.save_clip_record(
        project_id=i.project,
        scene_id=cast(str, uuid.UUID(i.scene)),
        provider="pika",
        file_url=None,
        prompt="",
    ),
    "clip change NaN": lambda s, i: s.save_clip(i.project, i.clip, duration=NAN),
    "change of no clip": lambda s, i: s.save_clip(i.project, MISSING, prompt="x"),
    "removal of no clip": lambda s, i: s.delete_clip(i.project, MISSING),
    "scene NaN": lambda s, i: s.sync_scenes(i.project, [{"heading": "a", "duration": NAN}]),
    "scenes as text": lambda s, i: s.sync_scenes(i.project, cast(Any, "abc")),
    "scene as a number": lambda s, i: s.sync_scenes(i.project, cast(Any, [1])),
    "scenes as None": lambda s, i: s.sync_scenes(i.project, cast(Any, None)),
    "no clips to order": lambda s, i: s.reorder_clips(i.project, []),
    "order of no clip": lambda s, i: s.reorder_clips(i.project, [MISSING]),
    "order naming a clip twice": lambda s, i: s.reorder_clips(i.project, [i.clip, i.clip]),
    "order of a bad id": lambda s, i: s.reorder_clips(i.project, ["x"]),
    "audio duration NaN": lambda s, i: s.create_audio_file(i.project, kind="music", duration=NAN),
    "voice settings NaN": lambda s, i: s.create_voice(name="n", settings={"s": NAN}),
    "clip ids as UUID objects": lambda s, i: s.reorder_clips(i.project, [cast(str, uuid.UUID(i.clip))]),
    "clip ids as text": lambda s, i: s.reorder_clips(i.project, i.clip),
    "signed URL for NaN seconds": lambda s, i: s.signed_url(
        "clips", f"projects/{i.project}/clips/a.mp4", cast(int, NAN)
    ),
    "signed URL for text seconds": lambda s, i: s.signed_url(
        "clips", f"projects/{i.project}/clips/a.mp4", cast(int, "60")
    ),
    "voice change NaN": lambda s, i: s.update_voice(MISSING, settings={"s": NAN}),
    "clip of a bad id": lambda s, i: s.save_clip_record(
        project_id=i.project, scene_id=None, provider="p", file_url=None, prompt="", id="x"
    ),
    "clip of an id in use with other values": lambda s, i: s.save_clip_record(
        project_id=i.project, scene_id=None, provider="p", file_url=None, prompt="other", id=i.clip
    ),
    "export of an id in use with other values": lambda s, i: s.create_export(
        i.project, id=i.export, format="gif"
    ),
    "audio file of a voice that does not exist": lambda s, i: s.create_audio_file(
        i.project, voice_id=MISSING
    ),
    "voices of a bad user id": lambda s, i: s.list_voices("bob"),
    "project of a bad id": lambda s, i: s.load_project("nope"),
    "settings nested too deep": lambda s, i: s.update_project(i.project, settings=_nested(FIELD_DEPTH + 1)),
    "new project nested too deep": lambda s, i: s.create_project("t", settings=_nested(FIELD_DEPTH + 1)),
    "clip metadata nested too deep": lambda s, i: s.save_clip(
        i.project, i.clip, metadata={"a": _nested(FIELD_DEPTH)}
    ),
    "upload onto a file without upsert": lambda s, i: s.upload(
        "thumbnails", f"projects/{i.project}/thumbnails/taken.png", b"png", "image/png", upsert=False
    ),
    "voice settings nested too deep": lambda s, i: s.create_voice(
        name="n", settings=_nested(FIELD_DEPTH + 1)
    ),
}


@pytest.fixture
async def both(stack: Stack) -> AsyncIterator[tuple[Studio, Studio, Ids]]:
    """The library straight to the stand-in, and through a Supabase-mode daemon; one project's ids."""
    daemon = await stack.start_daemon()
    direct = connect({"SUPABASE_URL": stack.supabase.url, "SUPABASE_SERVICE_KEY": stack.supabase.service_key})
    # Each call once, as the direct library sends it: an outage is compared, not waited out.
    settings = {
        "SYNCD_URL": daemon.http,
        "SYNCD_SERVICE_KEY": stack.supabase.service_key,
        "SYNCD_RETRY_SECONDS": "0",
    }
    through = connect(settings)
    async with direct, through:
        project = await direct.create_project("Parity")
        scene = (await direct.sync_scenes(project["id"], [{"heading": "One"}]))[0]
        clip = await direct.save_clip_record(
            project_id=project["id"], scene_id=scene["id"], provider="pika", file_url=None, prompt="p"
        )
        export = await direct.create_export(project["id"], format="mp4")
        await direct.upload(
            "thumbnails", f"projects/{project['id']}/thumbnails/taken.png", b"png", "image/png"
        )
        yield direct, through, Ids(project["id"], scene["id"], clip["id"], export["id"])


async def refusal(call: Awaitable[Any]) -> tuple[str, str] | str:
    """The call's refusal as ``(code, message)``, or what it did instead."""
    try:
        result = await call
    except StudioError as exc:
        return exc.code, exc.message
    except Exception as exc:  # What escaped is the finding.
        return f"raised {type(exc).__name__}: {exc}"
    return f"returned {result!r:.200}"


async def test_both_modes_refuse_bad_calls_alike(both: tuple[Studio, Studio, Ids]) -> None:
    direct, through, ids = both
    differences = []
    for name, case in CASES.items():
        supabase, daemon = await refusal(case(direct, ids)), await refusal(case(through, ids))
        if not isinstance(supabase, tuple) or supabase != daemon:
            differences.append(f"{name}:\n  supabase: {supabase}\n  daemon:   {daemon}")
    assert not differences, "\n".join(differences)
    # Nothing refused changed the project.
    view = await direct.load_project(ids.project)
    assert [c["id"] for c in view["clips"]] == [ids.clip]
    assert view["project"]["settings"] == {}
    assert (await direct.list_exports(ids.project))[0]["progress"] == 0


async def test_both_modes_take_a_tuple_or_a_generator_for_a_list(both: tuple[Studio, Studio, Ids]) -> None:
    direct, through, ids = both
    for studio in (direct, through):
        clips = await studio.reorder_clips(ids.project, (ids.clip,))
        assert [c["id"] for c in clips] == [ids.clip]
        scenes = await studio.sync_scenes(ids.project, ({"id": ids.scene, "heading": h} for h in ["Two"]))
        assert [(s["id"], s["heading"]) for s in scenes] == [(ids.scene, "Two")]


async def test_in_both_modes_a_create_that_names_its_id_may_be_sent_again(
    both: tuple[Studio, Studio, Ids],
) -> None:
    """A renderer that lost an answer repeats the call: it gets the same row, and no second one."""
    direct, through, ids = both
    for studio in (direct, through):
        clip_id, export_id, voice_id, audio_id = (str(uuid.uuid4()) for _ in range(4))
        clip = {
            "project_id": ids.project,
            "scene_id": ids.scene,
            "provider": "pika",
            "file_url": "u",
            "prompt": "p",
        }
        first = await studio.save_clip_record(**clip, id=clip_id)
        assert await studio.save_clip_record(**clip, id=clip_id) == first
        export = await studio.create_export(ids.project, id=export_id, format="webm")
        assert await studio.create_export(ids.project, id=export_id, format="webm") == export
        voice = await studio.create_voice(id=voice_id, name="Narrator")
        assert await studio.create_voice(id=voice_id, name="Narrator") == voice
        audio = await studio.create_audio_file(ids.project, id=audio_id, kind="music", duration=3)
        assert await studio.create_audio_file(ids.project, id=audio_id, kind="music", duration=3) == audio
        with pytest.raises(StudioError) as other:
            await studio.create_voice(id=voice_id, name="Host")
        assert (other.value.code, other.value.message) == (
            "conflict",
            f"voice {voice_id} exists with other values",
        )
        view = await studio.load_project(ids.project)
        assert [c["id"] for c in view["clips"]].count(clip_id) == 1
        assert [e["id"] for e in await studio.list_exports(ids.project)].count(export_id) == 1
        assert [a["id"] for a in await studio.list_audio_files(ids.project)].count(audio_id) == 1
        assert [v["id"] for v in await studio.list_voices()].count(voice_id) == 1


async def test_in_both_modes_a_clip_of_a_scene_deleted_meanwhile_is_kept_without_its_scene(
    both: tuple[Studio, Studio, Ids],
) -> None:
    """The user deleted the scene while its clip rendered: the clip is recorded, with no scene."""
    direct, through, ids = both
    for studio in (direct, through):
        clip = await studio.save_clip_record(
            project_id=ids.project, scene_id=MISSING, provider="pika", file_url="u", prompt="late"
        )
        saved = functools.partial(is_stored, direct, ids.project, clip["id"])
        await wait_for(saved, f"clip {clip['id']} in the database", WAIT)
        stored = await stored_clip(direct, ids.project, clip["id"])
        assert stored is not None
        assert (stored["scene_id"], stored["prompt"], stored["file_url"]) == (None, "late", "u")


async def stored_clip(direct: Studio, project_id: str, clip_id: str) -> dict[str, Any] | None:
    """The clip as the database has it (None: not there yet)."""
    return next((c for c in (await direct.load_project(project_id))["clips"] if c["id"] == clip_id), None)


async def is_stored(direct: Studio, project_id: str, clip_id: str) -> bool:
    return await stored_clip(direct, project_id, clip_id) is not None


async def test_in_both_modes_a_storage_outage_is_unavailable(
    stack: Stack, both: tuple[Studio, Studio, Ids]
) -> None:
    """Storage answering 503 is worth retrying: ``unavailable``, not ``bad_request``."""
    direct, through, ids = both
    stack.supabase.faults.storage_unavailable = True
    path = f"projects/{ids.project}/thumbnails/outage.png"
    for studio in (direct, through):
        with pytest.raises(StudioError) as caught:
            await studio.upload("thumbnails", path, b"png", "image/png")
        assert caught.value.code == "unavailable", caught.value
        assert caught.value.message.startswith("storage: "), caught.value
