//! The torch device sula would compute on, described for people ("CPU · 2 threads",
//! "CUDA · NVIDIA H100 80GB HBM3").

use std::ffi::{CStr, c_char, c_int};

/// Keeps freed heap memory for reuse instead of handing it back to the system at once.
/// libtorch frees and reallocates the same activation buffers (megabytes each) at every
/// training step; with glibc's defaults each comes back as fresh pages, and on the CPU the
/// page faults cost training 15–40 % of its speed (docs/BENCHMARKS.md). With this, buffers
/// up to 32 MiB come from the heap and up to 1 GiB of freed memory stays there. Call it
/// first thing in `main`, before other threads start.
pub fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, and no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The libtorch version this binary was built against: the project's 2.13.0, or the one
/// `scripts/build-for-device.sh` built it for (a lent GPU machine's own PyTorch), so
/// that version lines and results' provenance say which arithmetic produced them.
pub const LIBTORCH_VERSION: &str = match option_env!("SULA_LIBTORCH_VERSION") {
    Some(version) => version,
    None => "2.13.0",
};

/// Where tensors live: the first CUDA device when libtorch sees one, else the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeDevice {
    Cpu { threads: usize },
    Cuda { name: String },
}

impl ComputeDevice {
    /// Asks libtorch (linked with its CUDA library, see `build.rs`) what is available.
    pub fn detect() -> ComputeDevice {
        if tch::Cuda::is_available() {
            ComputeDevice::Cuda {
                name: cuda_device_name().unwrap_or_else(|| "GPU 0".to_string()),
            }
        } else {
            ComputeDevice::Cpu {
                threads: tch::get_num_threads().max(1) as usize,
            }
        }
    }

    /// The tch device to put tensors on.
    pub fn tch_device(&self) -> tch::Device {
        match self {
            ComputeDevice::Cpu { .. } => tch::Device::Cpu,
            ComputeDevice::Cuda { .. } => tch::Device::Cuda(0),
        }
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeDevice::Cpu { threads: 1 } => write!(f, "CPU · 1 thread"),
            ComputeDevice::Cpu { threads } => write!(f, "CPU · {threads} threads"),
            ComputeDevice::Cuda { name } => write!(f, "CUDA · {name}"),
        }
    }
}

/// Name of CUDA device 0 from the driver API; libtorch does not expose it.
fn cuda_device_name() -> Option<String> {
    type Init = unsafe extern "C" fn(u32) -> c_int;
    type Get = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type Name = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    // SAFETY: libcuda's documented C entry points, called with valid pointers and a
    // buffer length that matches the buffer.
    unsafe {
        let lib = libloading::Library::new("libcuda.so.1").ok()?;
        let init: libloading::Symbol<Init> = lib.get(b"cuInit").ok()?;
        let get: libloading::Symbol<Get> = lib.get(b"cuDeviceGet").ok()?;
        let name: libloading::Symbol<Name> = lib.get(b"cuDeviceGetName").ok()?;
        if init(0) != 0 {
            return None;
        }
        let mut device = 0;
        if get(&mut device, 0) != 0 {
            return None;
        }
        let mut buffer = [0 as c_char; 256];
        if name(buffer.as_mut_ptr(), buffer.len() as c_int, device) != 0 {
            return None;
        }
        Some(
            CStr::from_ptr(buffer.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_devices() {
        assert_eq!(
            ComputeDevice::Cpu { threads: 2 }.to_string(),
            "CPU · 2 threads"
        );
        assert_eq!(
            ComputeDevice::Cuda { name: "X".into() }.to_string(),
            "CUDA · X"
        );
        let detected = ComputeDevice::detect();
        assert!(!detected.to_string().is_empty());
    }
}
