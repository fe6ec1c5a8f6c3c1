"""Times smpclient uploading an image, for `cargo xtask bench` (side by side with fieldkit).

Usage: python3 smpclient_upload.py PORT IMAGE  ->  prints the upload's seconds (connect excluded).
"""

import asyncio
import sys
import time

from smpclient import SMPClient
from smpclient.transport.serial import SMPSerialTransport


async def main(port: str, image_path: str) -> None:
    image = open(image_path, "rb").read()
    async with SMPClient(SMPSerialTransport(), port, timeout_s=10.0) as client:
        start = time.monotonic()
        async for _ in client.upload(image, first_timeout_s=30.0):
            pass
        print(f"{time.monotonic() - start:.4f}")


asyncio.run(main(sys.argv[1], sys.argv[2]))
