//! Ruby objects the extension holds from statics: GC root slots, and the
//! "keeper" DATA objects whose mark and compact functions pin what the Rust
//! tables of the profiler and of reports refer to.

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::os::raw::c_void;

use rb_sys::{
    rb_data_type_struct__bindgen_ty_1, rb_data_type_t, rb_data_typed_object_wrap,
    rb_gc_register_address, Qnil, VALUE,
};

/// A VALUE slot registered as a GC root with `rb_gc_register_address` (the
/// one registration API every Ruby from 3.1 to 4.0 keeps). Written only with
/// the GVL held.
pub(crate) struct GcRoot(UnsafeCell<VALUE>);
unsafe impl Sync for GcRoot {}

impl GcRoot {
    pub(crate) const fn new() -> GcRoot {
        GcRoot(UnsafeCell::new(Qnil as VALUE))
    }
    pub(crate) fn get(&self) -> VALUE {
        unsafe { *self.0.get() }
    }
    pub(crate) fn set(&self, v: VALUE) {
        unsafe { *self.0.get() = v }
    }
    pub(crate) fn is_set(&self) -> bool {
        self.get() != Qnil as VALUE
    }
    /// Registers the slot with Ruby's GC; once per slot, with the GVL held.
    pub(crate) unsafe fn register(&self) {
        rb_gc_register_address(self.0.get());
    }
}

/// `rb_data_type_t` holds raw pointers; these are immutable and static.
pub(crate) struct DataType(rb_data_type_t);
unsafe impl Sync for DataType {}

type GcHook = unsafe extern "C" fn(*mut c_void);

impl DataType {
    /// The type of a keeper: marks and updates (after compaction) what its
    /// owner's tables refer to; never freed.
    pub(crate) const fn keeper(name: &'static CStr, mark: GcHook, compact: GcHook) -> DataType {
        DataType(rb_data_type_t {
            wrap_struct_name: name.as_ptr(),
            function: rb_data_type_struct__bindgen_ty_1 {
                dmark: Some(mark),
                dfree: None,
                dsize: None,
                dcompact: Some(compact),
                reserved: [std::ptr::null_mut()],
            },
            parent: std::ptr::null(),
            data: std::ptr::null_mut(),
            flags: 0,
        })
    }
}

/// A keeper's data pointer: Ruby skips the mark and compact functions of
/// DATA objects whose pointer is NULL, so it points at this.
static KEEPER_TAG: u8 = 0;

/// A new keeper of type `ty`, kept for the whole process by the caller's
/// registered root. With the GVL held.
pub(crate) unsafe fn new_keeper(ty: &'static DataType) -> VALUE {
    rb_data_typed_object_wrap(0, &KEEPER_TAG as *const u8 as *mut c_void, &ty.0)
}
