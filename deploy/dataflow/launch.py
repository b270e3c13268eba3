"""Flex Template entry point: the template's parameters arrive as --name=value arguments.

Our own options (--metadata, --imagenet, --out, ...) go to the build command; the rest (--runner,
--project, --region, --sdk_container_image, ...) are Beam's, passed through unchanged.
"""

import sys

from imagenet_captions.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
