//! Memory benchmark: peak memory of a pipeline stays flat as its input
//! grows tenfold (bounded by its buffers, not by its input).
//!
//! Run it with:
//!
//! ```text
//! cargo bench -j2 --bench memory
//! ```
//!
//! Each workload runs at two sizes, each size in a fresh child process (this
//! bench binary re-executed with `child WORKLOAD ITEMS`), so that one run's
//! peak cannot hide in another's. The child reports two peaks:
//!
//! * `VmHWM` from `/proc/self/status`: the peak resident set of the whole
//!   process (binary, runtime, stacks, allocator slack);
//! * the peak of live heap bytes, from a counting global allocator in this
//!   binary (every `alloc` adds its size, every `dealloc` takes it off, and
//!   the highest sum is kept).
//!
//! Workloads:
//!
//! * `floor`: the runtime and an empty pipeline, for scale;
//! * `w1`: W1, `iter(0..n) >> map(x * 3 + 1) >> filter(x % 7 != 0) >>
//!   for_each(sum)`, fused in one task, over 1,000,000 and 10,000,000
//!   `u64`. The source is a range, so nothing holds the input: the peak is
//!   the chunks' buffers;
//! * `slow_sink`: a fast source of 1 KiB items (`vec![i as u8; 1024]`, made
//!   lazily by the source) into a sink that sleeps 1 ms every 256 items,
//!   with an edge of its own (`#[buffer = 4096]`) between them, over
//!   100,000 and 1,000,000 items (100 MiB and 1 GiB of items in total).
//!   The source is far faster than the sink, so the edge stays full, and
//!   `block` back-pressure must hold the source back; if it did not, the
//!   items would pile up in memory.
//!
//! * `collect`, a control: W1 ending in `collect`, which keeps every item
//!   it is given, so its peak must grow with its input; it shows the
//!   measurement would see growth.
//!
//! "Flat" here means the larger size's peak heap is within 10% (or 1 MiB)
//! of the smaller one's. Nothing is asserted: the figures are printed.
//!
//! This is a plain `fn main` (`harness = false`), like the other benches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Builder;

/// Counts live heap bytes and keeps their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    #[inline]
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    #[inline]
    fn shrank(size: usize) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System`, which upholds the
// `GlobalAlloc` contract, with the caller's own layout and pointer
// unchanged; the counters are plain atomics that never allocate, so the
// allocator does not recurse, and a failed allocation (null) is not
// counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator)
        // with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid for `layout`'s
        // alignment, as the caller guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // The old block is gone and the new one is live.
            Self::shrank(layout.size());
            Self::grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak resident set (`VmHWM`) of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[inline]
fn map_step(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

#[inline]
fn keep(x: &u64) -> bool {
    !x.is_multiple_of(7)
}

/// Runs one workload over `items` in this process; returns a checksum.
fn run(workload: &str, items: u64) -> u64 {
    use pipeline::pipeline;
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build current-thread runtime");
    match workload {
        "floor" => {
            rt.block_on(pipeline! { iter(0..items) >> discard(); }.run())
                .expect("runs");
            0
        }
        "w1" => {
            let mut sum = 0u64;
            rt.block_on(
                pipeline! {
                    iter(0..items) >> map(map_step) >> filter(keep) >> for_each(|x| sum = sum.wrapping_add(x));
                }
                .run(),
            )
            .expect("W1 runs to completion");
            let expected = (0..items)
                .map(map_step)
                .filter(keep)
                .fold(0u64, u64::wrapping_add);
            assert_eq!(sum, expected, "W1 sums every item");
            sum
        }
        "slow_sink" => {
            let mut seen = 0u64;
            let mut bytes = 0u64;
            rt.block_on(
                pipeline! {
                    iter((0..items).map(|i| vec![i as u8; 1024]))
                        >> #[buffer = 4096] for_each(|item: Vec<u8>| {
                            seen += 1;
                            bytes += item.len() as u64;
                            let pause = seen.is_multiple_of(256);
                            async move {
                                if pause {
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                            }
                        });
                }
                .run(),
            )
            .expect("the slow-sink pipeline runs to completion");
            assert_eq!(seen, items, "the sink sees every item");
            bytes
        }
        "collect" => {
            let kept = pipeline::Collected::new();
            rt.block_on(
                pipeline! {
                    iter(0..items) >> map(map_step) >> filter(keep) >> collect(&kept);
                }
                .run(),
            )
            .expect("the collecting pipeline runs to completion");
            kept.take().len() as u64
        }
        other => panic!("unknown workload `{other}`"),
    }
}

/// What a child reports.
struct Peak {
    vm_hwm_kib: u64,
    heap_peak: usize,
    seconds: f64,
}

/// Re-runs this binary as `child WORKLOAD ITEMS` and reads its report.
fn in_child(workload: &str, items: u64) -> Peak {
    let exe = std::env::current_exe().expect("this bench's path");
    let output = Command::new(exe)
        .args(["child", workload, &items.to_string()])
        .output()
        .expect("run the bench binary as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child `{workload} {items}` failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEAK "))
        .expect("the child prints its peaks");
    let mut fields = line
        .split_whitespace()
        .map(|f| f.split_once('=').expect("k=v").1);
    let mut next = || fields.next().expect("three fields");
    Peak {
        vm_hwm_kib: next().parse().expect("VmHWM"),
        heap_peak: next().parse().expect("heap peak"),
        seconds: next().parse().expect("seconds"),
    }
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let workload = &args[1];
        let items: u64 = args[2].parse().expect("ITEMS is a number");
        let start = Instant::now();
        let check = run(workload, items);
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(check);
        println!(
            "PEAK vm_hwm_kib={} heap_peak={} seconds={seconds:.3}",
            vm_hwm_kib(),
            PEAK.load(Ordering::Relaxed)
        );
        return;
    }

    let workloads: [(&str, &str, [u64; 2]); 4] = [
        ("floor", "runtime + empty pipeline", [0, 0]),
        (
            "w1",
            "W1: iter >> map >> filter >> sum",
            [1_000_000, 10_000_000],
        ),
        (
            "slow_sink",
            "1 KiB items >> #[buffer = 4096] slow sink",
            [100_000, 1_000_000],
        ),
        (
            "collect",
            "control: W1 into collect (keeps its output)",
            [1_000_000, 10_000_000],
        ),
    ];
    println!("peak memory per run, each run in a fresh child process");
    println!();
    println!(
        "{:<44} | {:>10} | {:>10} | {:>14} | {:>9} | {:>6}",
        "workload", "items", "VmHWM MiB", "heap peak MiB", "input MiB", "secs"
    );
    println!(
        "{:-<44}-+-{:-<10}-+-{:-<10}-+-{:-<14}-+-{:-<9}-+-{:-<6}",
        "", "", "", "", "", ""
    );
    for (workload, label, sizes) in workloads {
        let sizes: &[u64] = if workload == "floor" {
            &sizes[..1]
        } else {
            &sizes
        };
        let mut peaks = Vec::new();
        for &items in sizes {
            let peak = in_child(workload, items);
            let item_bytes = match workload {
                "w1" | "collect" => 8.0,
                "slow_sink" => 1024.0,
                _ => 0.0,
            };
            println!(
                "{:<44} | {:>10} | {:>10.2} | {:>14.3} | {:>9.1} | {:>6.3}",
                label,
                items,
                peak.vm_hwm_kib as f64 / 1024.0,
                mib(peak.heap_peak as f64),
                mib(items as f64 * item_bytes),
                peak.seconds
            );
            peaks.push(peak);
        }
        if let [small, large] = &peaks[..] {
            let growth = large.heap_peak as f64 - small.heap_peak as f64;
            let flat = growth <= (small.heap_peak as f64 * 0.1).max(1024.0 * 1024.0);
            println!(
                "{:<44}   10x the items: heap peak {:+.3} MiB, VmHWM {:+.2} MiB: {}",
                "",
                mib(growth),
                (large.vm_hwm_kib as f64 - small.vm_hwm_kib as f64) / 1024.0,
                if flat { "flat" } else { "NOT flat" }
            );
        }
    }
}
