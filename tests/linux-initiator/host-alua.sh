#!/bin/bash
# The Linux host as referee for `ironlun host rtpg` and `ironlun host paths` (issue 9,
# acceptance 2) and for the multipath engine behind `ironlun host serve-nbd` (issue 10,
# acceptance 2: at every step it sends I/O to the paths of the guest's active path group).
# One RAM disk behind two targets: west (portal 1, target port group alua_west, id 1) and
# east (portal 2, alua_east, id 2). The admin steps the groups through
# Active/Optimized, Active/Non-optimized, Standby, Unavailable, Offline, Transitioning and the
# preferred bit (host hook). At every step the guest (open-iscsi, scsi_dh_alua, dm-multipath)
# waits until it has taken the change in, then asks the host for the host tools' view and
# compares it, as normalized lines, with its own:
#
#   rtpg via=PATH group=ID state=0xNN pref=P status=0xNN sup=TOLUSNA-bits ports=IDS
#        host: `ironlun host rtpg --json URL`       guest: `sg_rtpg --decode /dev/sdX`
#        (a path whose port refuses the command: `rtpg via=PATH refused` on both sides)
#   map wwid=… vendor=… product=… hwhandler=alua|none
#   path NAME group=ID rtpi=ID state=0xNN pref=P dm=active|failed checker=ready|ghost|faulty
#        inservice=0|1 prio=N (prio only for a path in service: multipathd never refreshes
#        a failed path's priority, so its number is the last one it had)
#   pg prio=N status=active|enabled paths=NAMES
#        (groups as a set, not in the map's order: multipathd re-sorts its path groups by
#        priority only when it reloads the map, at a moment of its own after a path fails, so
#        the guest listed `0[west] 50[east]` or `50[east] 0[west]` for the same state; which
#        group carries the I/O is compared: status=active and the engine line)
#        host: `ironlun host paths --json URL_WEST URL_EAST`
#        guest: `multipath -ll`, `multipathd show paths` (prio), sysfs access_state and
#        preferred_path, `sg_vpd -p di` (group and relative port of the path)
#
# Any difference fails the run; both sides are printed at every step, and a table at the end.
#
# Why the setup looks like this (details in the test's notes): both groups are implicit-only
# (alua_access_type 1, TPGS=1), because with explicit ALUA the kernel answers a path group
# switch with SET TARGET PORT GROUPS and would move the states itself; the guest's
# multipath.conf gives ironlun's vendor group_by_prio and failback immediate (the defaults,
# failover and manual failback, never re-sort groups); a PREF-only change raises no unit
# attention, so the guest rescans both paths after every change; a preferred Standby group
# would outrank Active/Optimized (81 > 50) and make dm-multipath flap between the groups, so
# the Standby step clears the preferred bit and the next step sets it again.
#
#   tests/linux-initiator/host-alua.sh        (root; builds the VM image on first use)
#   IRONLUN_BIN=path VMI_TOOL=path VMI_BUILD_DIR=dir P1=port P2=port tests/linux-initiator/host-alua.sh
set -euo pipefail

WEST=iqn.2026-11.org.ironlun:default
EAST=iqn.2026-11.org.ironlun:east
DEV=core/rd_mcp_0/ramdisk0

if [ -z "${VMI_GUEST:-}" ]; then
  SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  ROOT="$(cd "$(dirname "$SELF")/../.." && pwd)"
  BIN=${IRONLUN_BIN:-$ROOT/target/release/ironlun}
  # The host tools' view as normalized lines (see the top of this file); '#' lines are notes.
  host_view() { # DIR with rtpg-{west,east}.{json,err,rc} and paths.{json,err,rc}
    python3 - "$1" "$URL_WEST" "$URL_EAST" <<'PY'
import json, sys
d, url_w, url_e = sys.argv[1:4]
names = {url_w: "west", url_e: "east"}
def name(u): return names.get(u, u)
def read(f):
    try:
        return open(f"{d}/{f}").read()
    except OSError:
        return ""
for n in ("west", "east"):
    if read(f"rtpg-{n}.rc").strip() != "0":
        print(f"rtpg via={n} refused")
        print(f"# rtpg via={n}: {read(f'rtpg-{n}.err').strip()}")
        continue
    r = json.loads(read(f"rtpg-{n}.json"))
    for g in r["groups"]:
        s = g["supported"]
        sup = "".join(str(int(s[k])) for k in ("t", "o", "lbd", "u", "s", "an", "ao"))
        ports = ",".join(str(p) for p in g["relative_target_ports"])
        print(f"rtpg via={n} group={g['group_id']} state=0x{g['state_code']:02x} pref={int(g['pref'])} "
              f"status=0x{g['status_code']:02x} sup={sup} ports={ports}")
if read("paths.rc").strip() != "0":
    print(f"# paths failed: {read('paths.err').strip()}")
else:
    v = json.loads(read("paths.json"))
    for f in v["failed"]:
        print(f"path {name(f['url'])} examine-failed")
        print(f"# path {name(f['url'])}: {f['error']}")
    for m in v["maps"]:
        print(f"map wwid={m['wwid']} vendor={m['vendor']} product={m['product']} hwhandler={m['hwhandler']}")
        for g in m["path_groups"]:
            for p in g["paths"]:
                prio = p["priority"] if p["in_service"] else "-"
                print(f"path {name(p['url'])} group={p['target_port_group']} rtpi={p['relative_target_port']} "
                      f"state=0x{p['state_code']:02x} pref={int(p['pref'])} dm={p['dm_state']} checker={p['checker']} "
                      f"inservice={int(p['in_service'])} prio={prio}")
            ps = ",".join(sorted(name(p["url"]) for p in g["paths"]))
            print(f"pg prio={g['priority']} status={g['status']} paths={ps}")
PY
  }
  if [ "${1:-}" = --hook ]; then
    # One request line from the guest:
    #   state GROUP ao|ano|s|u|o|t  /  pref GROUP on|off  /  view  /  show
    read -r req a b _
    case "$req" in
      state) "$BIN" --state-dir "$ALUA_STATE" alua set-state "$DEV" "$a" "$b" 2>&1 ;;
      pref) "$BIN" --state-dir "$ALUA_STATE" alua set-pref "$DEV" "$a" "$b" 2>&1 ;;
      show) "$BIN" --state-dir "$ALUA_STATE" alua show "$DEV" 2>&1 ;;
      view)
        d=$(mktemp -d "$ALUA_STATE/view.XXXXXX")
        for n in west east; do
          u=$URL_WEST; [ $n = east ] && u=$URL_EAST
          if "$BIN" host --timeout 5 --json rtpg "$u" >"$d/rtpg-$n.json" 2>"$d/rtpg-$n.err"; then
            echo 0 >"$d/rtpg-$n.rc"
          else
            echo $? >"$d/rtpg-$n.rc"
          fi
        done
        rc=0
        "$BIN" host --timeout 5 --json paths "$URL_WEST" "$URL_EAST" >"$d/paths.json" 2>"$d/paths.err" || rc=$?
        echo $rc >"$d/paths.rc"
        host_view "$d" 2>&1
        # The multipath engine (serve-nbd, carrying a trickle of reads): the paths it sends
        # I/O to, compared with the paths of the guest's active dm-multipath group.
        "$BIN" host --json nbd-status "$ALUA_STATE/nbd.sock" 2>&1 | python3 -c '
import json, sys
names = {sys.argv[1]: "west", sys.argv[2]: "east"}
try:
    v = json.load(sys.stdin)
    used = sorted(names.get(p["url"], p["url"]) for p in v["paths"] if p["in_use"])
    print("engine in-use=" + (",".join(used) or "none"))
except ValueError:
    print("engine unreadable")' "$URL_WEST" "$URL_EAST"
        rm -rf "$d"
        ;;
      *) echo "unknown request: $req" ;;
    esac
    exit 0
  fi
  TOOL=${VMI_TOOL:-$ROOT/../shared/tools/linux-initiator}
  P1=${P1:-3267} P2=${P2:-3268}
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p ironlun)
  "$TOOL/build-image.sh" >/dev/null
  export ALUA_STATE URL_WEST URL_EAST
  URL_WEST="iscsi://127.0.0.1:$P1/$WEST/0"
  URL_EAST="iscsi://127.0.0.1:$P2/$EAST/0"
  ALUA_STATE=$(mktemp -d /tmp/ironlun-vmi-host-alua.XXXXXX)
  "$BIN" serve --state-dir "$ALUA_STATE" --portal "127.0.0.1:$P1" >"$ALUA_STATE/daemon.log" 2>&1 &
  daemon=$!
  cleanup() {
    kill "${nbd:-}" "${load:-}" 2>/dev/null || true
    kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$ALUA_STATE"
  }
  trap cleanup EXIT
  for _ in $(seq 100); do [ -S "$ALUA_STATE/control.sock" ] && break; sleep 0.1; done
  cli() { "$BIN" --state-dir "$ALUA_STATE" "$@" >/dev/null; }
  cli create "iscsi/$EAST/tpgt_1"
  cli create "iscsi/$EAST/tpgt_1/np/127.0.0.1:$P2"
  cli create "iscsi/$EAST/tpgt_1/lun/lun_0" "dev=$DEV"
  cli set "iscsi/$EAST/tpgt_1/attrib/generate_node_acls" 1
  cli set "iscsi/$EAST/tpgt_1/attrib/demo_mode_write_protect" 0
  cli set "iscsi/$EAST/tpgt_1/enable" 1
  for g in west:1 east:2; do
    cli create "$DEV/alua/alua_${g%:*}" "tg_pt_gp_id=${g#*:}"
    cli set "$DEV/alua/alua_${g%:*}/alua_access_type" 1
  done
  cli set "iscsi/$WEST/tpgt_1/lun/lun_0/alua_tg_pt_gp" alua_west
  cli set "iscsi/$EAST/tpgt_1/lun/lun_0/alua_tg_pt_gp" alua_east
  # The multipath engine over the same two paths, exported by serve-nbd, with a trickle of
  # reads (fio) so that it meets the unit attentions as the guest's kernel does.
  command -v fio >/dev/null || { echo "host-alua.sh: fio is needed (apt-get install fio)" >&2; exit 2; }
  P3=${P3:-$((P2 + 1))}
  "$BIN" host serve-nbd --listen "127.0.0.1:$P3" --status-socket "$ALUA_STATE/nbd.sock" \
    --checker-interval 1 "$URL_WEST" "$URL_EAST" >"$ALUA_STATE/nbd.log" 2>&1 &
  nbd=$!
  for _ in $(seq 100); do [ -S "$ALUA_STATE/nbd.sock" ] && break; sleep 0.1; done
  fio --name=trickle --ioengine=nbd --uri="nbd://127.0.0.1:$P3/ironlun" --rw=randread --bs=4k \
    --iodepth=1 --rate_iops=50 --size=64M --time_based --runtime=3600 >"$ALUA_STATE/fio.log" 2>&1 &
  load=$!
  rc=0
  t0=$(date +%s.%N)
  "$TOOL/run-scenario.sh" -t 480 -f "$(dirname "$SELF")/multipath-ironlun.conf" -e "WEST=$WEST" -e "EAST=$EAST" \
    -p "10.0.2.100:3260=127.0.0.1:$P1" -p "10.0.2.101:3260=127.0.0.1:$P2" \
    -H "$SELF --hook" "$SELF" || rc=$?
  echo "host-alua.sh: exit $rc after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
  if ! kill -0 "$daemon" 2>/dev/null; then echo "host-alua.sh: the daemon died" >&2; rc=1; fi
  [ $rc = 0 ] || tail -20 "$ALUA_STATE/daemon.log" >&2
  exit $rc
fi

# ---------------------------------------------------------------- guest side
. "$VMI_LIB"
P1=$(vmi_portals | sed -n 1p)
P2=$(vmi_portals | sed -n 2p)

cp /vmi/work/multipath-ironlun.conf /etc/multipath.conf
multipathd reconfigure >/dev/null

vmi_step "discovery and login: west through portal 1, east through portal 2"
vmi_discover "$P1" >/dev/null
vmi_discover "$P2" >/dev/null
iscsiadm -m node -T "$WEST" -p "$P1" --login >/dev/null
iscsiadm -m node -T "$EAST" -p "$P2" --login >/dev/null
vmi_wait_disks 2
disk_of() { # target iqn -> sdX
  local s
  for s in /sys/class/iscsi_session/session*; do
    if [ "$(cat "$s/targetname")" = "$1" ]; then
      basename "$(ls -d "$s"/device/target*/*/block/* | head -1)"
      return
    fi
  done
}
W=$(disk_of "$WEST") E=$(disk_of "$EAST")
echo "west path /dev/$W, east path /dev/$E"
MAP=$(vmi_wait_mpath 2)
multipath -ll
# Each path's target port group and relative target port (VPD 0x83; they never change here).
declare -A GROUP RTPI
for d in "$W" "$E"; do
  GROUP[$d]=$(( $(sg_vpd -p di "/dev/$d" | awk '/Target port group:/ { print $NF; exit }') ))
  RTPI[$d]=$(( $(sg_vpd -p di "/dev/$d" | awk '/Relative target port:/ { print $NF; exit }') ))
done
echo "west: group ${GROUP[$W]} port ${RTPI[$W]}; east: group ${GROUP[$E]} port ${RTPI[$E]}"
name_of() { case "$1" in "$W") echo west ;; "$E") echo east ;; *) echo "$1" ;; esac; }

# The kernel's access_state words -> the state code.
state_code() {
  case "$1" in
    active/optimized) echo 0x00 ;; active/non-optimized) echo 0x01 ;; standby) echo 0x02 ;;
    unavailable) echo 0x03 ;; lba-dependent) echo 0x04 ;; offline) echo 0x0e ;;
    transitioning) echo 0x0f ;; *) echo "?$1" ;;
  esac
}

# sg_rtpg --decode of one path, as normalized lines.
guest_rtpg() { # sdX
  local via out
  via=$(name_of "$1")
  if ! out=$(sg_rtpg --decode "/dev/$1" 2>&1); then
    echo "rtpg via=$via refused"
    return
  fi
  echo "$out" | awk -v via="$via" '
    function flush() { if (g != "") printf "rtpg via=%s group=%d state=%s pref=%s status=%s sup=%s ports=%s\n", via, g, st, pref, stat, sup, ports }
    /target port group id :/ { flush(); split($0, a, /[:,=]/); g = strtonum_(a[2]); pref = a[4] + 0; ports = ""; next }
    /asymmetric access state :/ { st = $8; next }
    /T_SUP :/ { gsub(/[^0-9]/, " "); sup = $1 $2 $3 $4 $5 $6 $7; next }
    /status code :/ { stat = $4; next }
    /^ +0x[0-9a-f]+$/ { p = strtonum_($1); ports = ports (ports == "" ? "" : ",") p; next }
    END { flush() }
    function strtonum_(s,   i, c, v) { gsub(/ /, "", s); s = tolower(s); sub(/^0x/, "", s); v = 0
      for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
      return v }'
}

# multipath -ll + multipathd + sysfs + VPD 0x83, as normalized lines.
guest_paths() {
  local ll d n dm chk grp rtpi st pref prio ins
  ll=$(multipath -ll "$MAP" 2>/dev/null)
  echo "$ll" | awk 'NR == 1 { w = $2; gsub(/[()]/, "", w); split($4, vp, ","); v = vp[1]; p = vp[2] }
    /hwhandler=/ { h = ($0 ~ /hwhandler=.1 alua/) ? "alua" : "none" }
    END { printf "map wwid=%s vendor=%s product=%s hwhandler=%s\n", w, v, p, h }'
  for d in "$W" "$E"; do
    n=$(name_of "$d")
    read -r dm chk < <(echo "$ll" | awk -v d="$d" '$0 ~ (" " d " ") { for (i = 1; i <= NF; i++) if ($i == d) { print $(i + 2), $(i + 3); exit } }')
    grp=${GROUP[$d]} rtpi=${RTPI[$d]}
    st=$(state_code "$(cat "/sys/block/$d/device/access_state")")
    pref=$(cat "/sys/block/$d/device/preferred_path")
    ins=0
    if [ "$dm" = active ] && { [ "$chk" = ready ] || [ "$chk" = ghost ]; }; then ins=1; fi
    prio=-
    [ $ins = 1 ] && prio=$(multipathd show paths raw format '%d %p' | awk -v d="$d" '$1 == d { print $2 }')
    echo "path $n group=$grp rtpi=$rtpi state=$st pref=$pref dm=${dm:-?} checker=${chk:-?} inservice=$ins prio=$prio"
  done
  echo "$ll" | awk -v W="$W" -v E="$E" '
    function flush() { if (n) printf "pg prio=%s status=%s paths=%s\n", pr, stt, ps }
    /prio=.*status=/ { flush(); n++; pr = $0; sub(/.*prio=/, "", pr); sub(/ .*/, "", pr)
      stt = $0; sub(/.*status=/, "", stt); sub(/ .*/, "", stt); ps = ""; next }
    n && / sd[a-z]+ / { for (i = 1; i <= NF; i++) if ($i ~ /^sd[a-z]+$/) { nm = ($i == W) ? "west" : ($i == E) ? "east" : $i
      # names in alphabetical order: the order inside a group means nothing
      if (ps == "") ps = nm; else if (nm < ps) ps = nm "," ps; else ps = ps "," nm } }
    END { flush() }'
}

# The paths of the active path group: where dm-multipath sends I/O ("none" without one).
guest_view() {
  local gp
  guest_rtpg "$W"; guest_rtpg "$E"
  gp=$(guest_paths)
  echo "$gp"
  echo "$gp" | awk '$1 == "pg" && $3 == "status=active" { split($4, a, "="); act = a[2] }
    END { print "engine in-use=" (act == "" ? "none" : act) }'
}

# Has the guest taken the admin's change in? The kernel's state of each path equals what its
# group reports through a port that answers RTPG, the checker has judged it (ready for active
# states, ghost for standby, faulty otherwise), and the whole view is the same twice in a row,
# one checker interval apart.
settled() {
  local d grp st pref rep chk want
  for d in "$W" "$E"; do
    grp=${GROUP[$d]}
    st=$(state_code "$(cat "/sys/block/$d/device/access_state")")
    pref=$(cat "/sys/block/$d/device/preferred_path")
    rep=$( { guest_rtpg "$W"; guest_rtpg "$E"; } | awk -v g="group=$grp" '$3 == g { print $4, $5; exit }')
    [ "$rep" = "state=$st pref=$pref" ] || return 1
    chk=$(multipathd show paths raw format '%d %t %T' | awk -v d="$d" '$1 == d { print $2, $3 }')
    case "$st" in 0x00 | 0x01) want="active ready" ;; 0x02) want="active ghost" ;; *) want="failed faulty" ;; esac
    [ "$chk" = "$want" ] || return 1
  done
  return 0
}

wait_settled() { # -> seconds it took on stdout
  local t0 i prev="" cur
  t0=$(vmi_uptime)
  for i in $(seq 1 60); do
    if settled; then
      cur=$(guest_view)
      [ "$cur" = "$prev" ] && break
      prev=$cur
      sleep 2
    else
      prev=""
      sleep 0.5
    fi
  done
  awk -v a="$t0" -v b="$(vmi_uptime)" 'BEGIN { printf "%.1f", b - a }'
}

# One-line summary of a view for the final table.
summary() {
  awk '$1 == "path" { split($5, s, "="); split($6, p, "="); split($8, c, "="); split($10, q, "=")
         v[$2] = sprintf("%s%s %s %s", s[2], (p[2] == 1 ? "+p" : ""), c[2], q[2]) }
       $1 == "pg" { split($2, q, "="); split($4, m, "="); pgs = pgs sprintf(" %s[%s]", q[2], m[2]) }
       $1 == "rtpg" && $3 == "refused" { ref = ref ", rtpg " $2 " refused" }
       $1 == "engine" { split($2, e, "="); eng = ", I/O to " e[2] }
       END { printf "W %s | E %s | pg%s%s%s", v["west"], v["east"], pgs, ref, eng }'
}

FAILS=0
TABLE=()
US=$'\x1f'  # field separator of TABLE rows
step() { # N TITLE HOST-REQUEST...
  local n=$1 title=$2 r host guest secs
  shift 2
  vmi_step "step $n: $title"
  for r in "$@"; do echo "  admin: $r -> $(vmi_host "$r" | tr '\n' ' ')"; done
  # A PREF-only change raises no unit attention: make the kernel read RTPG again now, through
  # the paths whose group is in a state that lets sd's rescan through (sd spins a NOT READY
  # disk up for 100 s unless the sense says standby or unavailable; one RTPG refreshes every
  # group of the LU anyway).
  for d in "$W" "$E"; do
    case "$( { guest_rtpg "$W"; guest_rtpg "$E"; } | awk -v g="group=${GROUP[$d]}" '$3 == g { print $4; exit }')" in
      state=0x0[0-3]) echo 1 >"/sys/block/$d/device/rescan" ;;
    esac
  done
  secs=$(wait_settled)
  guest=$(guest_view | sort)
  host=$(vmi_host view | sort)
  echo "  guest took ${secs}s to settle"
  echo "  --- host (ironlun host rtpg / paths)"
  echo "$host" | sed 's/^/  H /'
  echo "  --- guest (sg_rtpg --decode / multipath -ll)"
  echo "$guest" | sed 's/^/  G /'
  if [ "$(echo "$host" | grep -v '^#')" = "$guest" ]; then
    echo "  step $n: SAME"
    TABLE+=("$n$US$title$US$(echo "$host" | summary)$US$(echo "$guest" | summary)${US}same$US$secs")
  else
    echo "  step $n: DIFFERENT (- host, + guest):"
    diff <(echo "$host" | grep -v '^#') <(echo "$guest") | sed 's/^/    /' || true
    multipath -ll
    FAILS=$((FAILS + 1))
    TABLE+=("$n$US$title$US$(echo "$host" | summary)$US$(echo "$guest" | summary)${US}DIFFERENT$US$secs")
  fi
}

step 1 "west ao, east ao"
step 2 "west ano, east ao" "state alua_west ano"
step 3 "west ano+pref, east ao" "pref alua_west on"
step 4 "west ao+pref, east ano" "state alua_west ao" "state alua_east ano"
step 5 "west s (pref off), east ao" "pref alua_west off" "state alua_east ao" "state alua_west s"
step 6 "west u+pref, east ao" "pref alua_west on" "state alua_west u"
step 7 "west o+pref, east ao" "state alua_west o"
step 8 "west t+pref, east ao" "state alua_west t"
step 9 "west ano, pref off, east ao" "state alua_west ano" "pref alua_west off"

vmi_step "summary: W/E = path state (+p preferred) checker prio; pg = group prio[paths]"
printf '%-4s %-28s %-6s %s\n' step admin side view
for row in "${TABLE[@]}"; do
  IFS=$US read -r n title h g verdict secs <<<"$row"
  printf '%-4s %-28s %-6s %s\n' "$n" "$title" host "$h"
  printf '%-4s %-28s %-6s %s\n' "" "$verdict, settled in ${secs}s" guest "$g"
done

vmi_step "logout"
multipath -F >/dev/null 2>&1 || true
iscsiadm -m node -u >/dev/null 2>&1 || true
if [ $FAILS -gt 0 ]; then echo "FAIL: $FAILS step(s) differ"; exit 1; fi
echo "PASS: the host tools and the Linux host agree at every step"
