//! SQLite's process-wide memory settings, made once before the first connection opens. The
//! bundled SQLite allocates with the C library's `malloc` on sqlx's worker threads and, by
//! default, keeps memory statistics behind a global mutex taken on every allocation; wxauth reads
//! none of those statistics. Here statistics are switched off and SQLite allocates with mimalloc,
//! the allocator the rest of the process uses.

use std::ffi::{c_int, c_void};
use std::sync::Once;

use libsqlite3_sys::{
    SQLITE_CONFIG_MALLOC, SQLITE_CONFIG_MEMSTATUS, SQLITE_OK, sqlite3_config, sqlite3_mem_methods,
};

static CONFIGURE: Once = Once::new();

/// Apply the settings, the first time only. SQLite accepts them only before it initialises (its
/// first connection); when something opened SQLite earlier, it keeps its defaults, which work the
/// same, only slower, so a refusal is logged at debug level and nothing else.
pub fn configure() {
    CONFIGURE.call_once(|| {
        // SAFETY: every SQLite connection wxauth opens is opened by `db::connect`, which runs
        // this first; the `Once` makes any other caller wait until it is done, so no other SQLite
        // call runs meanwhile. SQLite answers SQLITE_MISUSE rather than acting when it has already
        // initialised. The integer argument is what SQLITE_CONFIG_MEMSTATUS takes.
        let code = unsafe { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if code != SQLITE_OK {
            tracing::debug!(code, "SQLite kept its memory statistics");
        }
        let methods = mimalloc_methods();
        // SAFETY: as above; SQLITE_CONFIG_MALLOC takes a pointer to the methods, which SQLite
        // copies before the call returns. The methods are plain functions over mimalloc, which is
        // thread-safe.
        let code = unsafe { sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const methods) };
        if code != SQLITE_OK {
            tracing::debug!(code, "SQLite kept its allocator");
        }
    });
}

/// SQLite's allocator interface over mimalloc.
fn mimalloc_methods() -> sqlite3_mem_methods {
    sqlite3_mem_methods {
        xMalloc: Some(allocate),
        xFree: Some(free),
        xRealloc: Some(reallocate),
        xSize: Some(size),
        xRoundup: Some(round_up),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    }
}

/// A size SQLite asks for, as `usize`; SQLite never asks for a negative one, and a negative
/// one gets no memory.
fn requested(bytes: c_int) -> Option<usize> {
    usize::try_from(bytes).ok()
}

extern "C" fn allocate(bytes: c_int) -> *mut c_void {
    match requested(bytes) {
        // SAFETY: mimalloc's `malloc`; a null answer is SQLite's out-of-memory signal.
        Some(bytes) => unsafe { libmimalloc_sys::mi_malloc(bytes) },
        None => std::ptr::null_mut(),
    }
}

extern "C" fn free(pointer: *mut c_void) {
    // SAFETY: SQLite frees only what `allocate` or `reallocate` gave it.
    unsafe { libmimalloc_sys::mi_free(pointer) }
}

extern "C" fn reallocate(pointer: *mut c_void, bytes: c_int) -> *mut c_void {
    match requested(bytes) {
        // SAFETY: `pointer` came from `allocate` or `reallocate`.
        Some(bytes) => unsafe { libmimalloc_sys::mi_realloc(pointer, bytes) },
        None => std::ptr::null_mut(),
    }
}

extern "C" fn size(pointer: *mut c_void) -> c_int {
    // SAFETY: `pointer` came from `allocate` or `reallocate`.
    let bytes = unsafe { libmimalloc_sys::mi_usable_size(pointer) };
    c_int::try_from(bytes).unwrap_or(c_int::MAX)
}

extern "C" fn round_up(bytes: c_int) -> c_int {
    let Some(wanted) = requested(bytes) else {
        return bytes;
    };
    // SAFETY: a pure function of its argument.
    let rounded = unsafe { libmimalloc_sys::mi_good_size(wanted) };
    c_int::try_from(rounded).unwrap_or(bytes)
}

extern "C" fn init(_: *mut c_void) -> c_int {
    SQLITE_OK
}

extern "C" fn shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_allocates_from_mimalloc_and_keeps_no_statistics() {
        configure();
        // SAFETY: SQLite's own allocation functions, used as documented: the block is freed once.
        unsafe {
            let block = libsqlite3_sys::sqlite3_malloc(1000);
            assert!(!block.is_null());
            assert!(
                libmimalloc_sys::mi_is_in_heap_region(block),
                "SQLite allocated outside mimalloc"
            );
            assert_eq!(
                libsqlite3_sys::sqlite3_memory_used(),
                0,
                "SQLite counted its memory"
            );
            libsqlite3_sys::sqlite3_free(block);
        }
    }
}
