#!/bin/sh
# Cargo's runner for the QEMU boards (`target.<triple>.runner` in
# .cargo/config.toml): `cargo run-m4` and the other board aliases build the
# device app for a board and call this with the ELF.
#
# - MOTE_BOARD names the board (each alias sets it; default mps2-an386, as in
#   build.rs). Its QEMU system, machine and CPU are read from boards.rs, the
#   one board table.
# - MOTE_IMAGE, when set, is a flash image from
#   `cargo xtask firmware flash-image` (model slots A/B and the input area),
#   loaded at slot A's address, which the ELF carries as the absolute symbol
#   `_mote_slot_a` (build.rs puts it in memory.x). Without it the slots are
#   empty and the app says so after its kernel self-check.
#
# The firmware's exit code (semihosting) becomes QEMU's, so cargo's.
set -eu
elf=$1
shift
here=$(dirname "$0")
board=${MOTE_BOARD:-mps2-an386}
line=$(grep -F "name: \"$board\"," "$here/boards.rs") || {
    echo "qemu-run.sh: MOTE_BOARD=$board is not a board of $here/boards.rs" >&2
    exit 2
}
field() { printf '%s\n' "$line" | sed -n "s/.* $1: \"\([^\"]*\)\".*/\1/p"; }
qemu=$(field qemu)
if [ -z "$qemu" ]; then
    echo "qemu-run.sh: $board is a real board: QEMU does not run it (the ELF is $elf)" >&2
    exit 2
fi
set -- -machine "$(field qemu_machine)" -cpu "$(field qemu_cpu)" -nographic -monitor none \
    -semihosting-config enable=on,target=native -kernel "$elf" "$@"
if [ "$qemu" = qemu-system-riscv32 ]; then
    # No firmware below ours: QEMU starts the ELF itself, in M-mode.
    set -- -bios none "$@"
fi
if [ -n "${MOTE_IMAGE:-}" ]; then
    addr=$(nm "$elf" | awk '$3 == "_mote_slot_a" { print "0x" $1 }')
    if [ -z "$addr" ]; then
        echo "qemu-run.sh: $elf has no _mote_slot_a symbol (not built by firmware/mcu/build.rs?)" >&2
        exit 2
    fi
    set -- "$@" -device "loader,file=$MOTE_IMAGE,addr=$addr"
fi
exec "$qemu" "$@"
