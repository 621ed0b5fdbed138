"""Volume, snapshot and job routes: the manager calls of ``kvmpool vol-*``.

Answers are ``vol-list --json`` objects (``kvmpool.views.vol_json``); a new volume's
XML is built by ``kvmpool.views.vol_xml``, as the CLI's. Clone, create-from, wipe, upload
and download run
as jobs (202 and a job id); their progress callback is the job's, so cancelling a job
interrupts the manager's copy loop at the next chunk.

Upload streams the request body through a pipe into ``Manager.upload`` (no temporary
copy). Download writes the volume with ``Manager.download`` into a sparse spool file under
``<data>/service-spool/<pid>``, which ``GET /api/jobs/ID/content`` then sends once and removes.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from kvmpool import xml
from kvmpool.backends.base import CreateOptions, Reflink
from kvmpool.caps import WIPE_ALGORITHMS
from kvmpool.cli.main import Session, failing
from kvmpool.cli.output import jsonable
from kvmpool.errors import InvalidArgument, InvalidState
from kvmpool.host.run import Runner
from kvmpool.service.call import Call, Handler, Reply, Route
from kvmpool.service.jobs import State
from kvmpool.service.schema import BOOLEAN, INTEGER, SIZE, Field
from kvmpool.units import parse_size
from kvmpool.views import backing_volume, vol_json, vol_xml

if TYPE_CHECKING:
    from kvmpool.copy import Progress
    from kvmpool.service.app import Service

REFLINK = tuple(r.value for r in Reflink)


def _target(call: Call) -> str:
    return f"{call.params['pool']}/{call.params['vol']}"


def list_volumes(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"Failed to list volumes of pool {pool}"):
        _, vols = svc.manager().volumes(pool, details=True)
    return Reply(data=[vol_json(v) for v in vols])


def create_volume(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    name = call.text("name") or "from xml"
    session = Session(svc.paths, Runner())
    m = session.manager
    with failing(f"Failed to create vol {name}"):
        rec = m.record(pool)
        doc = call.text("xml")
        source = call.text("from_vol")
        if doc is None:
            capacity = call.number("capacity")
            if call.text("name") is None or capacity is None:
                raise InvalidArgument("fields 'name' and 'capacity' are required (or 'xml')")
            backing, backing_fmt = call.text("backing_vol"), call.text("backing_vol_format")
            if backing is not None:
                backing, probed = backing_volume(session.manager, pool, backing)
                backing_fmt = backing_fmt or probed
            doc = vol_xml(name, capacity, call.number("allocation"), call.text("format"),
                          backing, backing_fmt)
        elif {"name", "capacity", "allocation", "format", "backing_vol"} & set(call.body):
            raise InvalidArgument("give either 'xml' or the volume's fields, not both")
        vol = xml.parse_volume(doc, rec.current, capacity_optional=source is not None)
        if source is None:
            made = m.create_volume(rec, vol, CreateOptions(
                prealloc_metadata=call.flag("prealloc_metadata")))
            return Reply(201, vol_json(made))
        from_pool = call.text("from_pool")
        _, src = m.volume(source, from_pool or pool)
    reflink = Reflink(call.text("reflink") or Reflink.AUTO)

    def work(progress: Progress) -> object:
        with failing(f"Failed to create vol {vol.name} from {src.name}"):
            made = svc.manager().create_volume_from(
                pool, vol, source, from_pool, reflink=reflink,
                prealloc_metadata=call.flag("prealloc_metadata"), progress=progress)
        return vol_json(made)

    job = svc.jobs.start("volume.create_from", f"{rec.name}/{vol.name}", src.physical, work)
    return Reply(202, job.view(), job=True)


def get_volume(svc: Service, call: Call) -> Reply:
    with failing(f"failed to get vol '{call.params['vol']}'"):
        _, vol = svc.manager().volume(call.params["vol"], call.params["pool"])
    return Reply(data=vol_json(vol))


def volume_xml(svc: Service, call: Call) -> Reply:
    with failing(f"failed to get vol '{call.params['vol']}'"):
        rec, vol = svc.manager().volume(call.params["vol"], call.params["pool"])
    return Reply(text=xml.format_volume(vol, rec.current.type), content_type="application/xml")


def delete_volume(svc: Service, call: Call) -> Reply:
    with failing(f"Failed to delete vol {call.params['vol']}"):
        _, vol = svc.manager().delete_volume(call.params["vol"], call.params["pool"])
    return Reply(data={"deleted": vol.name})


def clone_volume(svc: Service, call: Call) -> Reply:
    pool, name = call.params["pool"], call.params["vol"]
    newname = call.text("newname") or ""
    with failing(f"Failed to clone vol from {name}"):
        rec, src = svc.manager().volume(name, pool)
    reflink = Reflink(call.text("reflink") or Reflink.AUTO)

    def work(progress: Progress) -> object:
        with failing(f"Failed to clone vol from {name}"):
            made = svc.manager().clone_volume(
                name, newname, pool, reflink=reflink,
                prealloc_metadata=call.flag("prealloc_metadata"), progress=progress)
        return vol_json(made)

    job = svc.jobs.start("volume.clone", f"{rec.name}/{newname}", src.physical, work)
    return Reply(202, job.view(), job=True)


def resize_volume(svc: Service, call: Call) -> Reply:
    pool, name = call.params["pool"], call.params["vol"]
    raw = call.body["capacity"]
    with failing(f"Failed to change size of volume '{name}' to {raw}"):
        text = str(raw)
        negative = text.startswith("-")
        if negative and not call.flag("shrink"):
            raise InvalidArgument("negative size requires shrink")
        size = parse_size(text[1:] if negative else text)
        made = svc.manager().resize_volume(
            name, pool, -size if negative else size, delta=call.flag("delta") or negative,
            shrink=call.flag("shrink"), allocate=call.flag("allocate"))
    return Reply(data=vol_json(made))


def wipe_volume(svc: Service, call: Call) -> Reply:
    pool, name = call.params["pool"], call.params["vol"]
    algorithm = call.text("algorithm") or "zero"
    with failing(f"Failed to wipe vol {name}"):
        rec, vol = svc.manager().volume(name, pool)

    def work(progress: Progress) -> object:
        with failing(f"Failed to wipe vol {name}"):
            svc.manager().wipe_volume(name, pool, algorithm, progress=progress)
        return {"wiped": name}

    job = svc.jobs.start("volume.wipe", f"{rec.name}/{vol.name}", vol.physical, work)
    return Reply(202, job.view(), job=True)


def upload(svc: Service, call: Call) -> Reply:
    """The body streams through a pipe into Manager.upload, which runs as the job."""
    pool, name = call.params["pool"], call.params["vol"]
    offset = call.query_int("offset") or 0
    length = call.query_int("length")
    sparse = call.query_flag("sparse")
    with failing(f"cannot upload to volume {name}"):
        rec, vol = svc.manager().volume(name, pool)
    assert call.stream is not None
    read_fd, write_fd = os.pipe()
    started = threading.Event()

    def work(progress: Progress) -> object:
        started.set()
        try:
            with failing(f"cannot upload to volume {name}"):
                count = svc.manager().upload(name, pool, f"/dev/fd/{read_fd}", offset=offset,
                                             length=length, sparse=sparse, progress=progress)
            return {"uploaded": count}
        finally:
            os.close(read_fd)

    total = call.length if length is None else min(length, call.length)
    job = svc.jobs.start("volume.upload", f"{rec.name}/{vol.name}", total, work)
    left = call.length
    try:
        while left > 0:
            chunk = call.stream.read(min(1 << 20, left))
            if not chunk:
                break
            left -= len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(write_fd, view):]
    except BrokenPipeError:
        pass  # the job stopped reading (failed or cancelled): its state says why
    finally:
        os.close(write_fd)
    reply = Reply(202, job.view(), job=True)
    if left > 0:
        reply.headers["Connection"] = "close"  # the rest of the body was not read
    return reply


def download(svc: Service, call: Call) -> Reply:
    pool, name = call.params["pool"], call.params["vol"]
    with failing(f"cannot download from volume {name}"):
        rec, vol = svc.manager().volume(name, pool)
    offset = call.number("offset") or 0
    length = call.number("length")
    spool = svc.spool
    os.makedirs(spool, mode=0o700, exist_ok=True)
    holder: dict[str, str] = {}

    def work(progress: Progress) -> object:
        path = os.path.join(spool, f"job-{holder['id']}")
        try:
            with failing(f"cannot download from volume {name}"):
                count = svc.manager().download(name, pool, path, offset=offset, length=length,
                                               sparse=True, progress=progress)
        except BaseException:
            if os.path.exists(path):
                os.unlink(path)
            raise
        return {"downloaded": count, "content": f"/api/jobs/{holder['id']}/content",
                "filename": vol.name}

    total = max(0, vol.physical - offset) if length is None else length
    job = svc.jobs.start("volume.download", f"{rec.name}/{vol.name}", total, work,
                         before=lambda j: holder.update(id=j.id))
    return Reply(202, job.view(), job=True)


def job_content(svc: Service, call: Call) -> Reply:
    job = svc.jobs.get(call.params["job"])
    result = job.result
    if job.op != "volume.download":
        raise InvalidArgument(f"job {job.id} ({job.op}) has no content")
    if job.state is not State.SUCCEEDED or not isinstance(result, dict):
        raise InvalidState(f"job {job.id} is {job.state.value}",
                           hint="wait until it has succeeded")
    path = os.path.join(svc.spool, f"job-{job.id}")
    if not os.path.exists(path):
        raise InvalidState(f"the content of job {job.id} was already fetched")
    filename = str(result.get("filename", "volume")).replace('"', "_")
    return Reply(file=path, remove_file=True, content_type="application/octet-stream",
                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def list_jobs(svc: Service, call: Call) -> Reply:
    return Reply(data=[j.view() for j in svc.jobs.all()])


def get_job(svc: Service, call: Call) -> Reply:
    return Reply(data=svc.jobs.get(call.params["job"]).view())


def cancel_job(svc: Service, call: Call) -> Reply:
    job = svc.jobs.cancel(call.params["job"])
    job.ended.wait(1.0)  # most jobs stop at their next chunk: answer with the end state
    return Reply(data=job.view())


def list_snapshots(svc: Service, call: Call) -> Reply:
    with failing(f"Failed to list snapshots of vol {call.params['vol']}"):
        _, snaps = svc.manager().snapshots(call.params["vol"], call.params["pool"])
    return Reply(data=jsonable(snaps))


def _snapshot(action: str, done: str) -> Handler:
    def run(svc: Service, call: Call) -> Reply:
        vol, pool = call.params["vol"], call.params["pool"]
        snap = call.params.get("snap") or call.text("name") or ""
        with failing(f"Failed to {action} snapshot {snap} of vol {vol}"):
            svc.manager().snapshot(action, vol, pool, snap, call.number("size"))
        return Reply(201 if action == "create" else 200, {done: snap})
    return run


V = "/api/pools/{pool}/volumes/{vol}"
ROUTES = (
    Route("GET", "/api/pools/{pool}/volumes", list_volumes, "volume.list",
          "A pool's volumes (vol-list --details --json).", tag="volumes", returns="[Volume]"),
    Route("POST", "/api/pools/{pool}/volumes", create_volume, "volume.create",
          "Create a volume (vol-create-as, vol-create with 'xml'); with 'from_vol', a "
          "job copying another volume's data (vol-create-from).", tag="volumes",
          body=(Field("name"), Field("capacity", SIZE, doc="bytes, or '10G'"),
                Field("allocation", SIZE), Field("format"), Field("backing_vol"),
                Field("backing_vol_format"), Field("prealloc_metadata", BOOLEAN),
                Field("xml", doc="a whole <volume> document"),
                Field("from_vol", doc="copy this volume's data (name, key or path)"),
                Field("from_pool"), Field("reflink", enum=REFLINK)),
          responses={201: "created", 202: "job started (from_vol)"}, returns="Volume"),
    Route("GET", V, get_volume, "volume.info", "A volume (vol-info --json).", tag="volumes",
          returns="Volume"),
    Route("GET", V + "/xml", volume_xml, "volume.dumpxml", "A volume's XML.", tag="volumes"),
    Route("DELETE", V, delete_volume, "volume.delete", "Delete a volume.", tag="volumes"),
    Route("POST", V + "/clone", clone_volume, "volume.clone",
          "Clone a volume in its pool, as a job.", tag="volumes",
          body=(Field("newname", required=True), Field("reflink", enum=REFLINK),
                Field("prealloc_metadata", BOOLEAN)), responses={202: "job started"}),
    Route("POST", V + "/resize", resize_volume, "volume.resize",
          "Change a volume's capacity (vol-resize).", tag="volumes",
          body=(Field("capacity", required=True,
                      doc="new size, e.g. '20G'; with delta a change; '-1G' shrinks by 1G"),
                Field("delta", BOOLEAN), Field("shrink", BOOLEAN),
                Field("allocate", BOOLEAN)), returns="Volume"),
    Route("POST", V + "/wipe", wipe_volume, "volume.wipe", "Wipe a volume, as a job.",
          tag="volumes", body=(Field("algorithm", enum=WIPE_ALGORITHMS),),
          responses={202: "job started"}),
    Route("PUT", V + "/content", upload, "volume.upload",
          "Write the request body into the volume (vol-upload), as a job.", tag="volumes",
          query=(Field("offset", INTEGER), Field("length", INTEGER),
                 Field("sparse", BOOLEAN)), stream_in=True, responses={202: "job started"}),
    Route("POST", V + "/download", download, "volume.download",
          "Read the volume (vol-download) as a job; fetch GET /api/jobs/ID/content after.",
          tag="volumes", body=(Field("offset", INTEGER), Field("length", INTEGER)),
          responses={202: "job started"}),
    Route("GET", V + "/snapshots", list_snapshots, "snapshot.list", "A volume's snapshots.",
          tag="snapshots", returns="[Snapshot]"),
    Route("POST", V + "/snapshots", _snapshot("create", "created"),
          "snapshot.create", "Take a snapshot.", tag="snapshots",
          body=(Field("name", required=True), Field("size", SIZE, doc="classic LVM only")),
          responses={201: "created"}),
    Route("POST", V + "/snapshots/{snap}/revert", _snapshot("revert", "reverted"),
          "snapshot.revert", "Bring the volume back to a snapshot.", tag="snapshots",
          body=()),
    Route("DELETE", V + "/snapshots/{snap}", _snapshot("delete", "deleted"),
          "snapshot.delete", "Delete a snapshot.", tag="snapshots"),
    Route("GET", "/api/jobs", list_jobs, "job.list", "Jobs, running and recent.", tag="jobs",
          returns="[Job]"),
    Route("GET", "/api/jobs/{job}", get_job, "job.info",
          "A job: state, bytes done of total, result or error.", tag="jobs", returns="Job"),
    Route("DELETE", "/api/jobs/{job}", cancel_job, "job.cancel", "Cancel a job.", tag="jobs",
          returns="Job"),
    Route("GET", "/api/jobs/{job}/content", job_content, "job.content",
          "The bytes a download job read (once).", tag="jobs"),
)
