"""Third-party SMP client against the fieldkit simulator.

Uses smpclient (PyPI) exactly as a Zephyr developer would against a real board: read the image
state, upload an MCUboot image made by imgtool, read the state again. Prints one JSON document
with both states so the Rust test can check them against the simulator's state file.

Usage: python3 smpclient_upload.py PORT IMAGE
"""

import asyncio
import json
import sys

from smp import image_management as smpimg
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead
from smpclient.transport.serial import SMPSerialTransport


def states(response):
    return [
        {
            "image": s.image,
            "slot": s.slot,
            "version": s.version,
            "hash": (s.hash or b"").hex(),
            "active": bool(s.active),
            "confirmed": bool(s.confirmed),
            "pending": bool(s.pending),
        }
        for s in response.images
    ]


async def main(port: str, image_path: str) -> int:
    image = open(image_path, "rb").read()
    async with SMPClient(SMPSerialTransport(), port, timeout_s=5.0) as client:
        before = await client.request(ImageStatesRead())
        if error(before):
            print(f"image state read failed: {before}", file=sys.stderr)
            return 1
        offsets = [off async for off in client.upload(image, first_timeout_s=20.0)]
        after = await client.request(ImageStatesRead())
        if not success(after):
            print(f"image state read failed: {after}", file=sys.stderr)
            return 1
        print(json.dumps({"before": states(before), "after": states(after), "last_offset": offsets[-1]}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
