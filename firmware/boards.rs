// The boards the firmware builds for: one table, included by
// `firmware/mcu/build.rs` (memory map, slots), by `xtask` (QEMU command
// line, flash image) and read by `qemu-run.sh` (QEMU machine and CPU, one
// board a line). Not a module: `include!`d as items.

/// A board: memory map and, for QEMU boards, how to run it.
#[allow(dead_code)]
pub struct Board {
    /// Name used by `MOTE_BOARD` and `--board`.
    pub name: &'static str,
    /// Rust target.
    pub target: &'static str,
    /// Extra rustflags (target CPU).
    pub rustflags: &'static str,
    /// QEMU system emulator, `-machine` and `-cpu` (empty: a real board, build only).
    pub qemu: &'static str,
    pub qemu_machine: &'static str,
    pub qemu_cpu: &'static str,
    pub flash: u32,
    pub flash_len: u32,
    pub ram: u32,
    pub ram_len: u32,
}

pub const BOARDS: [Board; 7] = [
    Board { name: "mps2-an386", target: "thumbv7em-none-eabihf", rustflags: "-C target-cpu=cortex-m4", qemu: "qemu-system-arm", qemu_machine: "mps2-an386", qemu_cpu: "cortex-m4", flash: 0x0000_0000, flash_len: 4 << 20, ram: 0x2000_0000, ram_len: 4 << 20 },
    Board { name: "mps2-an500", target: "thumbv7em-none-eabihf", rustflags: "-C target-cpu=cortex-m7", qemu: "qemu-system-arm", qemu_machine: "mps2-an500", qemu_cpu: "cortex-m7", flash: 0x0000_0000, flash_len: 4 << 20, ram: 0x2000_0000, ram_len: 4 << 20 },
    Board { name: "mps2-an505", target: "thumbv8m.main-none-eabihf", rustflags: "-C target-cpu=cortex-m33", qemu: "qemu-system-arm", qemu_machine: "mps2-an505", qemu_cpu: "cortex-m33", flash: 0x1000_0000, flash_len: 4 << 20, ram: 0x3800_0000, ram_len: 2 << 20 },
    Board { name: "mps3-an547", target: "thumbv8m.main-none-eabihf", rustflags: "-C target-cpu=cortex-m55", qemu: "qemu-system-arm", qemu_machine: "mps3-an547", qemu_cpu: "cortex-m55", flash: 0x0000_0000, flash_len: 512 << 10, ram: 0x2000_0000, ram_len: 512 << 10 },
    // RV32IMC: no FPU, no SIMD (the scalar kernels, soft-float f32). `virt`
    // has RAM only (128 MiB at 0x8000_0000): its first 4 MiB play the flash.
    Board { name: "virt-rv32", target: "riscv32imc-unknown-none-elf", rustflags: "-C target-cpu=generic-rv32", qemu: "qemu-system-riscv32", qemu_machine: "virt", qemu_cpu: "rv32", flash: 0x8000_0000, flash_len: 4 << 20, ram: 0x8040_0000, ram_len: 4 << 20 },
    Board { name: "stm32f746g-disco", target: "thumbv7em-none-eabihf", rustflags: "-C target-cpu=cortex-m7", qemu: "", qemu_machine: "", qemu_cpu: "", flash: 0x0800_0000, flash_len: 1 << 20, ram: 0x2000_0000, ram_len: 320 << 10 },
    Board { name: "nrf52840-dk", target: "thumbv7em-none-eabihf", rustflags: "-C target-cpu=cortex-m4", qemu: "", qemu_machine: "", qemu_cpu: "", flash: 0x0000_0000, flash_len: 1 << 20, ram: 0x2000_0000, ram_len: 256 << 10 },
];

/// Bytes at the end of flash for the input (token ids).
pub const INPUT_BYTES: u32 = 64 << 10;

/// (slot A, slot B, bytes per slot, input area) addresses: code gets a
/// quarter of flash (at least 192 KiB); the rest, less the input area, is two
/// equal model slots, 4 KiB aligned.
pub fn layout(b: &Board) -> (u32, u32, u32, u32) {
    let code = (b.flash_len / 4).max(192 << 10);
    let slot_len = ((b.flash_len - code - INPUT_BYTES) / 2) & !0xfff;
    let slot_a = b.flash + code;
    (slot_a, slot_a + slot_len, slot_len, b.flash + b.flash_len - INPUT_BYTES)
}
