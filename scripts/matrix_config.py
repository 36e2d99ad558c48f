#!/usr/bin/env python3
"""Write the daemon config of one conformance-matrix LU configuration.

usage: matrix_config.py NAME PORT WORKDIR [DEVICE] > config.json

Every configuration exports LUN 0 of iqn.2026-11.org.ironlun:default (tpgt 1, demo mode) on
127.0.0.1:PORT, 1 GiB, plus LUN 1, a second LU for EXTENDED COPY between LUs:
  thick      RAM disk, fully provisioned, WSNZ=1 (the embedded default's LU)
  thin       fileio on a sparse file with emulate_tpu=1, emulate_tpws=1 (punch-hole
             deallocation, LBPRZ=1) and WSNZ=0
  readonly   the thin configuration behind demo_mode_write_protect=1 (every LUN
             write-protected; thin so that UNMAP and WRITE SAME with UNMAP exist to be refused)
  removable  RAM disk with removable=1 (RMB, PREVENT ALLOW, load/eject)
  lbppb      fileio on DEVICE, a block device with 4096-byte sectors (a loop device),
             block_size=512 (8 logical blocks per physical block), thin
  large      fileio, write-through, 6 GiB (a SANITIZE that lasts long enough for
             Sanitize.Reset to watch it survive resets), NOP-In pings off (the test sleeps
             60 s at a time without answering them)
"""
import json
import os
import sys

IQN = "iqn.2026-11.org.ironlun:default"
SIZE = 1 << 30
CONFIGS = ("thick", "thin", "readonly", "removable", "large", "lbppb")


def ramdisk(name, serial, attributes):
    return {
        "plugin": "ramdisk", "hba": 0, "name": name, "wwn": serial,
        "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
        "size": SIZE, "write_back": False, "readonly": False, "attributes": attributes,
    }


def fileio(name, serial, path, attributes, size=SIZE):
    return {
        "plugin": "fileio", "hba": 0, "name": name, "wwn": serial,
        "vendor_id": "IRONLUN", "product_id": "FILEIO", "revision": "1.0",
        "size": size, "dev": path, "write_back": False, "readonly": False,
        "attributes": attributes,
    }


def config(name, port, workdir, device=None):
    # The NAA designator holds the first 25 hex digits of the serial: make them differ there,
    # or EXTENDED COPY's target descriptors could not tell the two LUs apart.
    serials = ["6c1d2a3e-000%d-4000-8000-000000000000" % i for i in (1, 2)]
    tpg_attrs = {"authentication": 0, "generate_node_acls": 1,
                 "demo_mode_write_protect": 0, "prod_mode_write_protect": 0}
    if name in ("thin", "readonly"):
        thin = {"emulate_tpu": 1, "emulate_tpws": 1, "emulate_wsnz": 0}
        objs = [fileio("thin%d" % i, s, os.path.join(workdir, "thin%d.img" % i), thin)
                for i, s in enumerate(serials)]
        paths = ["core/fileio_0/thin0", "core/fileio_0/thin1"]
        if name == "readonly":
            tpg_attrs["demo_mode_write_protect"] = 1
    elif name == "lbppb":
        thin = {"block_size": 512, "emulate_tpu": 1, "emulate_tpws": 1}
        lu0 = fileio("lbppb0", serials[0], device, thin)
        del lu0["size"]
        objs = [lu0, ramdisk("ramdisk1", serials[1], {})]
        paths = ["core/fileio_0/lbppb0", "core/rd_mcp_0/ramdisk1"]
    elif name == "large":
        objs = [fileio("large%d" % i, s, os.path.join(workdir, "large%d.img" % i), {},
                       6 << 30 if i == 0 else SIZE)
                for i, s in enumerate(serials)]
        paths = ["core/fileio_0/large0", "core/fileio_0/large1"]
        # Sanitize.Reset sleeps 60 s between TEST UNIT READYs without answering NOP-Ins.
        tpg_attrs["nopin_timeout"] = 0
    else:
        attrs = {"removable": 1} if name == "removable" else {}
        objs = [ramdisk("ramdisk%d" % i, s, dict(attrs)) for i, s in enumerate(serials)]
        paths = ["core/rd_mcp_0/ramdisk0", "core/rd_mcp_0/ramdisk1"]
    return {
        "version": 1,
        "storage_objects": objs,
        "discovery_auth": {"enforce_discovery_auth": False},
        "targets": [{
            "wwn": IQN, "fabric": "iscsi",
            "tpgs": [{
                "tag": 1, "enable": True, "rtpi": 1, "attributes": tpg_attrs,
                "parameters": {},
                "portals": [{"ip_address": "127.0.0.1", "port": port}],
                "luns": [{"index": i, "storage_object": p} for i, p in enumerate(paths)],
                "node_acls": [],
            }],
        }],
    }


def main(argv):
    if len(argv) not in (3, 4) or argv[0] not in CONFIGS or (argv[0] == "lbppb") != (len(argv) == 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    device = argv[3] if len(argv) == 4 else None
    json.dump(config(argv[0], int(argv[1]), os.path.abspath(argv[2]), device), sys.stdout,
              indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
