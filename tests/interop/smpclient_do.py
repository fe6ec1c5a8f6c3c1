"""One SMP action by smpclient (PyPI) against a port, as a Zephyr developer runs it.

Usage: python3 smpclient_do.py PORT ACTION [ARG]
  echo TEXT | list | upload FILE | test HASH | confirm | reset

Prints one JSON document: {"ok": bool, ...}. Each action opens the port anew, as a separate
tool run would. A v1 `{"rc": 0}` answer (what MCUboot's serial recovery sends for reset) is
success: smpclient's models read it as an error form, but rc 0 is MGMT_ERR_EOK.
"""

import asyncio
import json
import sys

from smp import error as smperr
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import EchoWrite, ResetWrite
from smpclient.transport.serial import SMPSerialTransport


def states(response):
    return [
        {
            "image": s.image or 0,
            "slot": s.slot,
            "version": s.version,
            "hash": (s.hash or b"").hex(),
            "active": bool(s.active),
            "confirmed": bool(s.confirmed),
            "pending": bool(s.pending),
        }
        for s in response.images
    ]


def outcome(response, **extra):
    if success(response):
        return {"ok": True, **extra}
    if isinstance(response, smperr.ErrorV1) and int(response.rc) == 0:
        return {"ok": True, "shape": "rc", **extra}
    return {"ok": False, "error": str(response)}


async def main(port: str, action: str, arg: str | None) -> dict:
    async with SMPClient(SMPSerialTransport(), port, timeout_s=5.0) as client:
        if action == "echo":
            r = await client.request(EchoWrite(d=arg))
            return outcome(r, r=getattr(r, "r", None))
        if action == "list":
            r = await client.request(ImageStatesRead())
            return outcome(r, images=states(r) if success(r) else None)
        if action == "upload":
            image = open(arg, "rb").read()
            offsets = [off async for off in client.upload(image, first_timeout_s=20.0)]
            return {"ok": offsets[-1] == len(image), "last_offset": offsets[-1], "chunks": len(offsets)}
        if action == "test":
            r = await client.request(ImageStatesWrite(hash=bytes.fromhex(arg), confirm=False))
            return outcome(r, images=states(r) if success(r) else None)
        if action == "confirm":
            r = await client.request(ImageStatesWrite(confirm=True))
            return outcome(r, images=states(r) if success(r) else None)
        if action == "reset":
            r = await client.request(ResetWrite())
            return outcome(r)
    raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    port, action = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    print(json.dumps(asyncio.run(main(port, action, arg))))
