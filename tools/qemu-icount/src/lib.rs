//! A QEMU TCG plugin that counts executed guest instructions between two
//! marker functions, for any ELF with symbols:
//!
//! ```text
//! qemu-system-arm … -plugin libqemu_icount.so,start=SYM,end=SYM
//! ```
//!
//! Every time the function `start` is entered, counting starts from zero;
//! when `end` is entered, the count is recorded. At exit the plugin prints
//! one line per recorded region to QEMU's log (stderr):
//! `icount: <start>..<end> <instructions>`. The markers' own instructions
//! are not counted; the counts are the same on every run (TCG executes the
//! same instructions for the same binary and input).
//!
//! Counting is per translation block (a callback adds the block's
//! instruction count), so it costs one call per executed block.

use qemu_plugin_sys::*;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The plugin API version this plugin was built for (QEMU checks it).
#[no_mangle]
pub static qemu_plugin_version: c_int = QEMU_PLUGIN_VERSION as c_int;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
static REGIONS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static NAMES: Mutex<(String, String)> = Mutex::new((String::new(), String::new()));

unsafe extern "C" fn on_tb(_vcpu: c_uint, n: *mut c_void) {
    if COUNTING.load(Ordering::Relaxed) {
        COUNT.fetch_add(n as u64, Ordering::Relaxed);
    }
}

unsafe extern "C" fn on_start(_vcpu: c_uint, _: *mut c_void) {
    COUNT.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
}

unsafe extern "C" fn on_end(_vcpu: c_uint, _: *mut c_void) {
    if COUNTING.swap(false, Ordering::Relaxed) {
        if let Ok(mut r) = REGIONS.lock() {
            r.push(COUNT.load(Ordering::Relaxed));
        }
    }
}

/// The symbol of an instruction, if QEMU knows one.
fn symbol(insn: *mut qemu_plugin_insn) -> Option<String> {
    // SAFETY: `insn` comes from QEMU for the translation block being translated.
    let p = unsafe { qemu_plugin_insn_symbol(insn) };
    if p.is_null() {
        return None;
    }
    // SAFETY: QEMU returns a NUL-terminated string that outlives this call.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn on_translate(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    // SAFETY: `tb` is the block QEMU is translating; the calls below are the
    // API's accessors and registrations for it.
    unsafe {
        let n = qemu_plugin_tb_n_insns(tb);
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(on_tb),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            n as *mut c_void,
        );
        if n == 0 {
            return;
        }
        // Markers are entered by a call, so their first instruction starts a block.
        let first = qemu_plugin_tb_get_insn(tb, 0);
        let Some(sym) = symbol(first) else { return };
        let Ok(names) = NAMES.lock() else { return };
        let cb: qemu_plugin_vcpu_udata_cb_t = if sym == names.0 {
            Some(on_start)
        } else if sym == names.1 {
            Some(on_end)
        } else {
            return;
        };
        qemu_plugin_register_vcpu_insn_exec_cb(
            first,
            cb,
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            std::ptr::null_mut(),
        );
    }
}

unsafe extern "C" fn on_exit(_id: qemu_plugin_id_t, _: *mut c_void) {
    let (Ok(regions), Ok(names)) = (REGIONS.lock(), NAMES.lock()) else {
        return;
    };
    let mut text = String::new();
    for n in regions.iter() {
        text.push_str(&format!("icount: {}..{} {n}\n", names.0, names.1));
    }
    if regions.is_empty() {
        text.push_str(&format!("icount: {}..{} never reached\n", names.0, names.1));
    }
    if let Ok(c) = CString::new(text) {
        // SAFETY: a valid NUL-terminated string.
        unsafe { qemu_plugin_outs(c.as_ptr()) };
    }
}

/// Entry point: reads `start=SYM,end=SYM` and registers the callbacks.
///
/// # Safety
/// Called by QEMU with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    _info: *const qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let (mut start, mut end) = (String::from("mote_mark_start"), String::from("mote_mark_end"));
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU passes argc NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy().into_owned();
        match arg.split_once('=') {
            Some(("start", v)) => start = v.to_string(),
            Some(("end", v)) => end = v.to_string(),
            _ => return -1,
        }
    }
    if let Ok(mut n) = NAMES.lock() {
        *n = (start, end);
    }
    // SAFETY: registering callbacks with the id QEMU gave this plugin.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_translate));
        qemu_plugin_register_atexit_cb(id, Some(on_exit), std::ptr::null_mut());
    }
    0
}
