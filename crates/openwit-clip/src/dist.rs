//! Data-parallel training on PyTorch's distributed engine (c10d), one process per rank.
//!
//! tch has no distributed API, so `csrc/dist.cpp` (compiled by `build.rs` against the libtorch
//! tch links) exposes c10d's `TCPStore`, `ProcessGroupGloo` (CPU tensors) and, in CUDA builds,
//! `ProcessGroupNCCL` through a few C functions; tensors cross as the `at::Tensor*` of
//! [`Tensor::as_ptr`], without copies.
//!
//! - Ranks: torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, or
//!   Slurm's `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID` with the first host of
//!   `SLURM_JOB_NODELIST` ([`RankEnv::from_env`]). Rank 0 hosts the `TCPStore`.
//! - The loss ([`loss`]): OpenCLIP's `ClipLoss` with `gather_with_grad` off. Each rank
//!   all-gathers the image and text features; its own slice keeps its graph. Without
//!   `local_loss` every rank computes the loss over the whole global batch; with it, over its
//!   own rows against every column.
//! - The gradients ([`GradSync`], from [`Dist::grad_sync`]): all-reduced in buckets by c10d's
//!   `Reducer`, the engine of PyTorch's DistributedDataParallel, while the backward pass runs,
//!   and scaled so that N ranks of batch b take exactly the step of one process of batch N x b
//!   (see below).
//! - Faults: a heartbeat thread per rank counts in the store; a rank whose count stops for the
//!   configured timeout is lost, and every other rank prints which one and ends with exit code 1
//!   (the collectives time out after the same timeout). The job resumes from its last checkpoint
//!   when started again.
//!
//! Gradient scaling. Without `local_loss`, every rank's loss is the global loss L over the N x b
//! pairs, and its backward pass only reaches its own b image and text features (the gathered
//! ones are constants): rank r gets dL/df_r . df_r/dθ. The encoders' true gradient is the sum of
//! these over the ranks, so the buckets are summed, not averaged as OpenCLIP's DDP does (which
//! scales the step by 1/N; Adam hides most of it, gradient clipping and eps do not). The logit
//! scale is the exception: it multiplies every logit, so each rank already has the whole
//! dL/dscale, and its sum is divided by N. With `local_loss`, rank r's loss is the mean over its
//! own b rows, and L is the mean of the N rank losses: the summed gradients are divided by N,
//! the logit scale's included. That gradient is the one of
//! (1/N) Σ_r loss_r(f_r, stop_grad(f_others)): the terms of one rank's rows through another
//! rank's columns are computed by no one (OpenCLIP pairs `local_loss` with `gather_with_grad` for
//! that reason), so it is close to, not equal to, one process with batch N x b; `tests/dist.rs`
//! checks it against that objective computed in one process.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// libtorch's `at::Tensor`, as the shim receives it ([`Tensor::as_ptr`]).
type CTensor = c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::error::{ClipError, Result};
use crate::hostlist::first_host;
use crate::loss::clip_loss;

#[repr(C)]
struct RawStore {
    _p: [u8; 0],
}
#[repr(C)]
struct RawGroup {
    _p: [u8; 0],
}
#[repr(C)]
struct RawWork {
    _p: [u8; 0],
}
#[repr(C)]
struct RawReducer {
    _p: [u8; 0],
}

// SAFETY: these signatures are the `extern "C"` functions of `csrc/dist.cpp`, compiled by
// `build.rs` into this crate; each call site states what it relies on.
unsafe extern "C" {
    fn owd_free_string(s: *mut c_char);
    fn owd_exit_now(code: c_int) -> !;
    fn owd_nccl_compiled() -> c_int;
    fn owd_store_new(
        host: *const c_char,
        port: c_int,
        is_server: c_int,
        world: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn owd_store_clone(s: *mut RawStore, out: *mut *mut RawStore) -> *mut c_char;
    fn owd_store_free(s: *mut RawStore);
    fn owd_store_add(
        s: *mut RawStore,
        key: *const c_char,
        delta: i64,
        out: *mut i64,
    ) -> *mut c_char;
    fn owd_store_counters(
        s: *mut RawStore,
        prefix: *const c_char,
        n: c_int,
        out: *mut i64,
    ) -> *mut c_char;
    fn owd_group_new(
        store: *mut RawStore,
        prefix: *const c_char,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        backend: c_int,
        iface: *const c_char,
        host: *const c_char,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn owd_group_free(g: *mut RawGroup);
    fn owd_all_reduce(
        g: *mut RawGroup,
        t: *const CTensor,
        op: c_int,
        out: *mut *mut RawWork,
    ) -> *mut c_char;
    fn owd_all_gather(
        g: *mut RawGroup,
        input: *const CTensor,
        output: *const CTensor,
        out: *mut *mut RawWork,
    ) -> *mut c_char;
    fn owd_broadcast(
        g: *mut RawGroup,
        t: *const CTensor,
        root: c_int,
        out: *mut *mut RawWork,
    ) -> *mut c_char;
    fn owd_barrier(g: *mut RawGroup, out: *mut *mut RawWork) -> *mut c_char;
    fn owd_work_wait(w: *mut RawWork) -> *mut c_char;
    fn owd_work_free(w: *mut RawWork);
    fn owd_reducer_new(
        g: *mut RawGroup,
        params: *const *const CTensor,
        n: c_int,
        bucket_bytes: i64,
        average: c_int,
        out: *mut *mut RawReducer,
    ) -> *mut c_char;
    fn owd_reducer_arm(r: *mut RawReducer) -> *mut c_char;
    fn owd_reducer_check(r: *mut RawReducer) -> *mut c_char;
    fn owd_reducer_timing(
        r: *mut RawReducer,
        launches: *mut i64,
        max: c_int,
        n: *mut c_int,
        last_grad: *mut i64,
    );
    fn owd_reducer_free(r: *mut RawReducer);
}

/// Turns the shim's error string (NULL = success) into a `Result`.
fn check(err: *mut c_char) -> std::result::Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, freed here once.
    let msg = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { owd_free_string(err) };
    Err(msg)
}

/// Adds `add` to the store's counter `key` (0 reads it) and returns the new value.
fn store_add(store: &StorePtr, key: &CStr, add: i64) -> std::result::Result<i64, String> {
    let mut v = 0i64;
    // SAFETY: a live store client, a C string and an out pointer.
    check(unsafe { owd_store_add(store.0, key.as_ptr(), add, &mut v) })?;
    Ok(v)
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("no NUL left")
}

/// Whether this build has ProcessGroupNCCL (built with `OPENWIT_CLIP_CUDA=1` and NCCL's headers).
pub fn nccl_compiled() -> bool {
    // SAFETY: no arguments, no state.
    unsafe { owd_nccl_compiled() != 0 }
}

/// A process's place in the job, from torchrun's or Slurm's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub world: usize,
    /// The rank on this node (the CUDA device it uses).
    pub local_rank: usize,
    /// The host of rank 0, which serves the `TCPStore`.
    pub master_addr: String,
    pub master_port: u16,
}

/// The default rendezvous port (torch's).
pub const DEFAULT_PORT: u16 = 29500;

impl RankEnv {
    /// The ranks from the process environment; `None` when neither torchrun's `RANK` and
    /// `WORLD_SIZE` nor Slurm's `SLURM_PROCID` and `SLURM_NTASKS` are set.
    pub fn from_env() -> Result<Option<RankEnv>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`RankEnv::from_env`] over any variable lookup (for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<RankEnv>> {
        let num = |k: &str| -> Result<Option<usize>> {
            match get(k) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    ClipError::Config(format!("{k}={v:?} is not a non-negative integer"))
                }),
            }
        };
        let port = match get("MASTER_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.trim().parse::<u16>().map_err(|_| {
                ClipError::Config(format!("MASTER_PORT={v:?} is not a port number"))
            })?,
        };
        let (rank, world, local_rank, addr) = if let (Some(rank), Some(world)) =
            (num("RANK")?, num("WORLD_SIZE")?)
        {
            let local = num("LOCAL_RANK")?.unwrap_or(0);
            let addr = get("MASTER_ADDR").ok_or_else(|| {
                ClipError::Config(
                    "RANK and WORLD_SIZE are set but MASTER_ADDR is not: set it to the host of rank 0 (torchrun sets all of them)".into(),
                )
            })?;
            (rank, world, local, addr)
        } else if let (Some(rank), Some(world)) = (num("SLURM_PROCID")?, num("SLURM_NTASKS")?) {
            let local = num("SLURM_LOCALID")?.unwrap_or(0);
            let addr = match get("MASTER_ADDR") {
                Some(a) => a,
                None => {
                    let list = get("SLURM_JOB_NODELIST")
                        .or_else(|| get("SLURM_NODELIST"))
                        .ok_or_else(|| {
                            ClipError::Config(
                                "SLURM_PROCID is set but neither SLURM_JOB_NODELIST nor MASTER_ADDR: cannot find rank 0's host".into(),
                            )
                        })?;
                    first_host(&list).ok_or_else(|| {
                        ClipError::Config(format!(
                            "SLURM_JOB_NODELIST={list:?}: cannot read its first host; set MASTER_ADDR"
                        ))
                    })?
                }
            };
            (rank, world, local, addr)
        } else {
            return Ok(None);
        };
        if world == 0 || rank >= world {
            return Err(ClipError::Config(format!(
                "rank {rank} of a world of {world}: the rank must be below the world size"
            )));
        }
        Ok(Some(RankEnv {
            rank,
            world,
            local_rank,
            master_addr: addr,
            master_port: port,
        }))
    }
}

/// The collective backend: Gloo for CPU tensors, NCCL for CUDA tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

/// Settings of [`Dist::init`].
#[derive(Debug, Clone)]
pub struct DistConfig {
    /// A lost rank (no heartbeat) or a collective that does not finish is an error after this.
    pub timeout: Duration,
    /// OpenCLIP's `local_loss`: each rank's loss over its own rows only.
    pub local_loss: bool,
    /// Gradient bucket size in bytes (DDP's default 25 MiB).
    pub bucket_bytes: usize,
}

impl Default for DistConfig {
    fn default() -> Self {
        DistConfig {
            timeout: Duration::from_secs(120),
            local_loss: false,
            bucket_bytes: 25 << 20,
        }
    }
}

/// Joins the job that torchrun's or Slurm's variables describe, when it has more than one rank:
/// the process group and the device this rank trains on (`device = "auto"` or `"cuda"` on CUDA
/// becomes `cuda:LOCAL_RANK`). `None` for a single process.
pub fn join_from_env(
    device: Device,
    device_setting: &str,
    cfg: DistConfig,
) -> Result<Option<(Dist, Device)>> {
    let Some(env) = RankEnv::from_env()? else {
        return Ok(None);
    };
    if env.world == 1 {
        return Ok(None);
    }
    let device = match (device, device_setting) {
        (Device::Cuda(_), "auto" | "cuda") => Device::Cuda(env.local_rank),
        (d, _) => d,
    };
    let d = Dist::init(&env, device, cfg)?;
    Ok(Some((d, device)))
}

/// A raw handle that the shim's C++ objects make thread-safe (TCPStore clients lock per call).
struct StorePtr(*mut RawStore);
// SAFETY: each StorePtr is one TCPStore client, used by one thread at a time.
unsafe impl Send for StorePtr {}

impl Drop for StorePtr {
    fn drop(&mut self) {
        // SAFETY: created by owd_store_new/clone, freed once.
        unsafe { owd_store_free(self.0) }
    }
}

/// The heartbeat thread's state, shared with the rank's main thread.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// This process's membership in the job: the store, the process group and the heartbeat.
pub struct Dist {
    rank: usize,
    world: usize,
    backend: Backend,
    device: Device,
    cfg: DistConfig,
    master: String,
    store: StorePtr,
    group: *mut RawGroup,
    heartbeat: Heartbeat,
    /// Set by [`Dist::finish`]: the group may be freed (no collective is blocked).
    finished: bool,
}

const HB_PREFIX: &str = "openwit/hb/";
const LEFT_KEY: &str = "openwit/left";

/// Ends the process with exit code 1 after saying why (a peer is lost: the collective threads
/// may be blocked for good, so nothing is unwound).
fn die(msg: &str) -> ! {
    tracing::error!("{msg}");
    eprintln!("openwit: {msg}");
    // SAFETY: ends the process.
    unsafe { owd_exit_now(1) }
}

impl Dist {
    /// Joins the job: connects to (rank 0: serves) the `TCPStore` at `MASTER_ADDR:MASTER_PORT`,
    /// creates the process group (Gloo on the CPU, NCCL on CUDA) and starts the heartbeat.
    pub fn init(env: &RankEnv, device: Device, cfg: DistConfig) -> Result<Dist> {
        let backend = if device.is_cuda() {
            if !nccl_compiled() {
                return Err(ClipError::Config(
                    "distributed training on CUDA needs NCCL, which this build lacks: build with OPENWIT_CLIP_CUDA=1 where NCCL's and CUDA's headers are (crates/openwit-clip/README.md)".into(),
                ));
            }
            Backend::Nccl
        } else {
            Backend::Gloo
        };
        let timeout_ms = cfg.timeout.as_millis().max(1) as i64;
        let host = cstring(&env.master_addr);
        let master = format!("{}:{}", env.master_addr, env.master_port);
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C strings and an out pointer; errors come back as a message.
        check(unsafe {
            owd_store_new(
                host.as_ptr(),
                env.master_port as c_int,
                (env.rank == 0) as c_int,
                env.world as c_int,
                timeout_ms,
                &mut raw,
            )
        })
        .map_err(|e| {
            ClipError::Config(format!(
                "rank {}: cannot reach the rendezvous store at {master} (MASTER_ADDR:MASTER_PORT, served by rank 0): {e}",
                env.rank
            ))
        })?;
        let store = StorePtr(raw);
        // The first heartbeat before the group: once the group exists, every rank's key does.
        let key = cstring(&format!("{HB_PREFIX}{}", env.rank));
        store_add(&store, &key, 1)
            .map_err(|e| ClipError::Config(format!("rendezvous store at {master}: {e}")))?;

        // Gloo's address: GLOO_SOCKET_IFNAME as torch reads it; on loopback jobs, 127.0.0.1;
        // otherwise the address this host's name resolves to.
        let iface = std::env::var("GLOO_SOCKET_IFNAME")
            .ok()
            .and_then(|s| s.split(',').next().map(str::to_string))
            .unwrap_or_default();
        let loopback = env.master_addr.starts_with("127.") || env.master_addr == "localhost";
        let bind = if loopback { "127.0.0.1" } else { "" };
        let (iface, bind) = (cstring(&iface), cstring(bind));
        let prefix = cstring("openwit/pg/");
        let mut group = std::ptr::null_mut();
        // SAFETY: live store, C strings, out pointer.
        check(unsafe {
            owd_group_new(
                store.0,
                prefix.as_ptr(),
                env.rank as c_int,
                env.world as c_int,
                timeout_ms,
                matches!(backend, Backend::Nccl) as c_int,
                iface.as_ptr(),
                bind.as_ptr(),
                &mut group,
            )
        })
        .map_err(|e| {
            ClipError::Config(format!(
                "rank {} of {}: cannot create the {backend:?} process group through {master}: {e}",
                env.rank, env.world
            ))
        })?;
        let mut hb_store = std::ptr::null_mut();
        // SAFETY: live store, out pointer.
        check(unsafe { owd_store_clone(store.0, &mut hb_store) })
            .map_err(|e| ClipError::Config(format!("rendezvous store at {master}: {e}")))?;
        let heartbeat = start_heartbeat(
            StorePtr(hb_store),
            env.rank,
            env.world,
            cfg.timeout,
            master.clone(),
        );
        let d = Dist {
            rank: env.rank,
            world: env.world,
            backend,
            device,
            cfg,
            master,
            store,
            group,
            heartbeat,
            finished: false,
        };
        d.barrier();
        tracing::info!(
            rank = d.rank,
            world = d.world,
            backend = ?d.backend,
            "joined the process group at {}",
            d.master
        );
        Ok(d)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn world(&self) -> usize {
        self.world
    }
    pub fn local_loss(&self) -> bool {
        self.cfg.local_loss
    }
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// A collective failed: a peer died (its connection closed) or did not answer in time. The
    /// heartbeat names the lost rank and ends the process; if no rank has lost its heartbeat by
    /// then (a rank alive but stuck), end it here with the collective's error.
    pub(crate) fn failed(&self, what: &str, err: String) -> ! {
        tracing::warn!(
            rank = self.rank,
            "{what} failed ({err}); waiting for the heartbeat to tell which rank is lost"
        );
        std::thread::sleep(self.cfg.timeout + 2 * hb_interval(self.cfg.timeout));
        die(&format!(
            "rank {} of {}: {what} failed and every rank still sends its heartbeat (a rank is stuck, not dead): {err}",
            self.rank, self.world
        ))
    }

    fn run(&self, what: &str, start: impl FnOnce(*mut *mut RawWork) -> *mut c_char) {
        let mut w = std::ptr::null_mut();
        if let Err(e) = check(start(&mut w)) {
            self.failed(what, e);
        }
        self.wait(what, w);
    }

    fn wait(&self, what: &str, w: *mut RawWork) {
        // SAFETY: w came from the shim, waited on and freed once.
        let r = check(unsafe { owd_work_wait(w) });
        unsafe { owd_work_free(w) };
        if let Err(e) = r {
            self.failed(what, e);
        }
    }

    /// All-reduces `t` in place (sum).
    pub fn all_reduce_sum_(&self, t: &Tensor) {
        // SAFETY: the group is alive; `t` outlives the wait.
        self.run("all_reduce", |w| unsafe {
            owd_all_reduce(self.group, t.as_ptr() as *const CTensor, 0, w)
        });
    }

    /// All-reduces `t` in place (max).
    pub fn all_reduce_max_(&self, t: &Tensor) {
        // SAFETY: as above.
        self.run("all_reduce", |w| unsafe {
            owd_all_reduce(self.group, t.as_ptr() as *const CTensor, 1, w)
        });
    }

    /// Every rank's `t` (the same shape on every rank) concatenated along dim 0, in rank order.
    pub fn all_gather(&self, t: &Tensor) -> Tensor {
        let t = t.detach().contiguous();
        let mut shape = t.size();
        shape[0] *= self.world as i64;
        let out = Tensor::empty(&shape, (t.kind(), t.device()));
        // SAFETY: both tensors outlive the wait.
        self.run("all_gather", |w| unsafe {
            owd_all_gather(
                self.group,
                t.as_ptr() as *const CTensor,
                out.as_ptr() as *const CTensor,
                w,
            )
        });
        out
    }

    /// Overwrites `t` with rank `root`'s.
    pub fn broadcast_(&self, t: &Tensor, root: usize) {
        // SAFETY: `t` outlives the wait.
        self.run("broadcast", |w| unsafe {
            owd_broadcast(self.group, t.as_ptr() as *const CTensor, root as c_int, w)
        });
    }

    pub fn barrier(&self) {
        // SAFETY: the group is alive.
        self.run("barrier", |w| unsafe { owd_barrier(self.group, w) });
    }

    /// This rank's place among the job's shard readers ([`crate::data::Share`]): every N-th
    /// shard from its rank on, or, with fewer shards than ranks, shards drawn with replacement.
    pub fn share(&self) -> crate::data::Share {
        crate::data::Share {
            rank: self.rank,
            world: self.world,
        }
    }

    /// Every rank's `values` (the same length on every rank), in rank order.
    pub fn all_gather_i64(&self, values: &[i64]) -> Vec<Vec<i64>> {
        let t = Tensor::from_slice(values)
            .reshape([1, values.len() as i64])
            .to_device(self.device);
        let all = self.all_gather(&t).to_device(Device::Cpu);
        let flat = Vec::<i64>::try_from(all.reshape([-1])).unwrap_or_default();
        flat.chunks(values.len().max(1))
            .map(<[i64]>::to_vec)
            .collect()
    }

    /// Fails unless every rank has the same `value` (the step a run resumes from, ...).
    pub fn check_same(&self, what: &str, value: i64) -> Result<()> {
        let t = Tensor::from_slice(&[value, -value]).to_device(self.device);
        self.all_reduce_max_(&t);
        let v = Vec::<i64>::try_from(t.to_device(Device::Cpu)).unwrap_or_default();
        if v.len() == 2 && v[0] == value && -v[1] == value {
            return Ok(());
        }
        Err(ClipError::Checkpoint(format!(
            "rank {}: the ranks disagree on {what} (this rank {value}, others between {} and {}); do the ranks see the same output folder?",
            self.rank,
            -v.get(1).copied().unwrap_or(0),
            v.first().copied().unwrap_or(0)
        )))
    }

    /// Work that rank 0 does alone while the others wait (a held-out evaluation, writing a
    /// checkpoint): rank 0 calls this when it is done, the others return once it has. The wait
    /// is on the store, not a collective, so it has no timeout (an evaluation may take longer than
    /// `dist_timeout`); the heartbeat still ends the job if a rank is lost meanwhile. `tag` names
    /// the occasion, the same on every rank and new each time (the step is part of it).
    pub fn after_rank0(&self, tag: &str) {
        let key = cstring(&format!("openwit/after0/{tag}"));
        if self.rank == 0 {
            if let Err(e) = store_add(&self.store, &key, 1) {
                self.failed("telling the other ranks that rank 0 is done", e);
            }
            return;
        }
        let poll = hb_interval(self.cfg.timeout).min(Duration::from_millis(100));
        if let Err(e) = self.wait_count(&key, 1, poll, None) {
            self.failed("waiting for rank 0", e);
        }
    }

    /// Waits until the store's counter `key` reaches `at_least`, reading it every `poll`, or
    /// until `deadline` has passed (`Ok` then too: the caller gave up waiting, nothing failed).
    fn wait_count(
        &self,
        key: &CStr,
        at_least: i64,
        poll: Duration,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), String> {
        while store_add(&self.store, key, 0)? < at_least {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            std::thread::sleep(poll);
        }
        Ok(())
    }

    /// Gives every rank rank 0's parameters (after initialization or a checkpoint).
    pub fn broadcast_params(&self, params: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for (_, p) in params {
                // In place: a detached view shares the parameter's storage.
                self.broadcast_(&p.detach(), 0);
            }
        });
    }

    /// The features of the whole global batch with this rank's slice still in the graph.
    fn gather_keep_own(&self, x: &Tensor) -> Tensor {
        let all = self.all_gather(x);
        let n = x.size()[0];
        let r = self.rank as i64;
        let total = all.size()[0];
        let mut parts = Vec::with_capacity(3);
        if r > 0 {
            parts.push(all.narrow(0, 0, r * n));
        }
        parts.push(x.shallow_clone());
        if (r + 1) * n < total {
            parts.push(all.narrow(0, (r + 1) * n, total - (r + 1) * n));
        }
        Tensor::cat(&parts, 0)
    }

    /// OpenCLIP's `ClipLoss` over the global batch (`gather_with_grad` off): see the module's
    /// documentation. Every rank's micro-batch must have the same size.
    pub fn clip_loss(&self, image: &Tensor, text: &Tensor, scale: &Tensor) -> Tensor {
        let all_i = self.gather_keep_own(image);
        let all_t = self.gather_keep_own(text);
        let n = image.size()[0];
        self.loss_over(&all_i, &all_t, scale, self.rank as i64 * n, n)
    }

    /// The loss over features of the whole global batch that are already gathered (this rank's
    /// live ones spliced in), this rank's rows being `rows` from `start`: without `local_loss`
    /// CLIP's loss over every pair, with it this rank's rows against every column.
    pub fn loss_over(
        &self,
        all_i: &Tensor,
        all_t: &Tensor,
        scale: &Tensor,
        start: i64,
        rows: i64,
    ) -> Tensor {
        if !self.cfg.local_loss {
            return clip_loss(all_i, all_t, scale);
        }
        let image = all_i.narrow(0, start, rows);
        let text = all_t.narrow(0, start, rows);
        let logits_i = scale
            * image
                .to_kind(Kind::Float)
                .matmul(&all_t.to_kind(Kind::Float).tr());
        let logits_t = scale
            * text
                .to_kind(Kind::Float)
                .matmul(&all_i.to_kind(Kind::Float).tr());
        let labels = Tensor::arange(rows, (Kind::Int64, image.device())) + start;
        (logits_i.cross_entropy_for_logits(&labels) + logits_t.cross_entropy_for_logits(&labels))
            / 2.0
    }

    /// The step's loss as every rank reports it: the global batch's (with `local_loss`, the
    /// mean of the ranks' losses, which is the same number).
    pub fn reported_loss(&self, loss: &Tensor) -> Tensor {
        if !self.cfg.local_loss {
            return loss.shallow_clone();
        }
        let t = loss.detach().to_kind(Kind::Float).reshape([1]).copy();
        self.all_reduce_sum_(&t);
        (t / self.world as f64).reshape([])
    }

    /// Starts all-reducing the gradients of `params` during the backward pass ([`GradSync`]);
    /// every rank passes the same parameters (the model's [`crate::model::Clip::named_parameters`]).
    pub fn grad_sync(&self, params: &[(String, Tensor)]) -> Result<GradSync<'_>> {
        let ptrs: Vec<*const CTensor> = params
            .iter()
            .map(|(_, p)| p.as_ptr() as *const CTensor)
            .collect();
        let mut raw = std::ptr::null_mut();
        // SAFETY: live group; the tensor pointers are valid for the call (the shim keeps its
        // own references to the parameters).
        check(unsafe {
            owd_reducer_new(
                self.group,
                ptrs.as_ptr(),
                ptrs.len() as c_int,
                self.cfg.bucket_bytes.max(1) as i64,
                self.cfg.local_loss as c_int,
                &mut raw,
            )
        })
        .map_err(|e| {
            ClipError::Config(format!(
                "rank {} of {}: cannot set up the gradient all-reduce: {e}",
                self.rank, self.world
            ))
        })?;
        let logit_scale = params
            .iter()
            .find(|(n, _)| n == "logit_scale")
            .map(|(_, p)| p.shallow_clone());
        Ok(GradSync {
            dist: self,
            raw,
            logit_scale,
            names: params.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// Leaves the job cleanly: waits for every rank to get here, stops the heartbeat, and on
    /// rank 0 (the store's host) waits for the others to have left before the store goes.
    pub fn finish(mut self) {
        self.barrier();
        self.heartbeat.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        let key = cstring(LEFT_KEY);
        let left = store_add(&self.store, &key, 1);
        if self.rank == 0 && left.is_ok() {
            // A store that stops answering ends the wait: nobody is left to wait for.
            let deadline = Instant::now() + self.cfg.timeout;
            let poll = Duration::from_millis(20);
            let _ = self.wait_count(&key, self.world as i64, poll, Some(deadline));
        }
        self.finished = true;
    }
}

/// The gradients' all-reduce during the backward pass: c10d's `Reducer`, the engine of
/// PyTorch's DistributedDataParallel. Autograd hooks on the parameters copy each gradient into
/// its bucket as soon as the backward pass has it, and a bucket's all-reduce starts once all of
/// its gradients are in, while the backward pass computes the rest; when the pass returns, every
/// parameter holds the reduced gradient. Buckets are [`DistConfig::bucket_bytes`] (DDP's 25 MiB,
/// the first 1 MiB), rebuilt after the first step in the order the gradients arrived, and the
/// gradients are views into them.
///
/// Scaling (see the module's documentation): the buckets are summed over the ranks, then
/// [`GradSync::finish`] divides the logit scale's gradient by N; with `local_loss` every bucket is
/// averaged instead. [`crate::accum::accumulated_backward`] arms it before the step's last
/// gradient pass (the earlier micro-batches of contrastive accumulation add up locally first,
/// as DDP's `no_sync`) and finishes it after.
pub struct GradSync<'d> {
    dist: &'d Dist,
    raw: *mut RawReducer,
    logit_scale: Option<Tensor>,
    /// The parameters' names, in the order the Reducer numbers them.
    names: Vec<String>,
}

/// How the last step's all-reduce overlapped its backward pass ([`GradSync::timing`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncTiming {
    /// When each bucket's all-reduce started, in seconds after the pass was armed, in order.
    pub launches: Vec<f64>,
    /// When the last gradient was ready, in seconds after the pass was armed.
    pub last_grad: f64,
}

impl SyncTiming {
    /// The buckets whose all-reduce started before the last gradient was ready.
    pub fn overlapped(&self) -> usize {
        self.launches
            .iter()
            .filter(|&&t| t < self.last_grad)
            .count()
    }
}

impl GradSync<'_> {
    pub fn dist(&self) -> &Dist {
        self.dist
    }

    /// Announces the step's last backward pass (or passes, with activation checkpointing):
    /// the reduced gradients are in the parameters when it has returned.
    pub fn arm(&self) {
        // SAFETY: live reducer; no backward pass runs (the caller is about to start one).
        if let Err(e) = check(unsafe { owd_reducer_arm(self.raw) }) {
            self.dist
                .failed("the gradient all-reduce (setting up the step)", e);
        }
    }

    /// After the armed backward pass: checks that it reached every parameter, and scales the
    /// logit scale's summed gradient (module documentation).
    pub fn finish(&self) -> Result<()> {
        // SAFETY: live reducer, after the backward pass.
        check(unsafe { owd_reducer_check(self.raw) }).map_err(|e| self.unreached(&e))?;
        if !self.dist.cfg.local_loss
            && let Some(p) = &self.logit_scale
        {
            tch::no_grad(|| {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_div_scalar_(self.dist.world as f64);
                }
            });
        }
        Ok(())
    }

    /// The error of a backward pass that left parameters without a gradient: their names, read
    /// from the indices the Reducer's message lists.
    fn unreached(&self, reducer_msg: &str) -> ClipError {
        let marker = "did not receive grad for rank";
        let names: Vec<&str> = reducer_msg
            .find(marker)
            .and_then(|i| reducer_msg[i..].split_once(':'))
            .map(|(_, rest)| {
                rest.lines()
                    .next()
                    .unwrap_or_default()
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse::<usize>().ok())
                    .filter_map(|i| self.names.get(i).map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let which = if names.is_empty() {
            reducer_msg.lines().next().unwrap_or_default().to_string()
        } else {
            names.join(", ")
        };
        ClipError::Config(format!(
            "rank {}: the step's backward pass gave no gradient to {which}; in a data-parallel job every trained parameter must take part in the loss of every step",
            self.dist.rank
        ))
    }

    /// How the last armed step's all-reduce overlapped its backward pass.
    pub fn timing(&self) -> SyncTiming {
        let mut launches = vec![0i64; 4096];
        let mut n: c_int = 0;
        let mut last = 0i64;
        // SAFETY: live reducer; the buffer holds `max` values.
        unsafe {
            owd_reducer_timing(
                self.raw,
                launches.as_mut_ptr(),
                launches.len() as c_int,
                &mut n,
                &mut last,
            )
        };
        launches.truncate((n.max(0) as usize).min(4096));
        SyncTiming {
            launches: launches.iter().map(|&t| t as f64 * 1e-9).collect(),
            last_grad: last as f64 * 1e-9,
        }
    }
}

impl Drop for GradSync<'_> {
    fn drop(&mut self) {
        // SAFETY: created by owd_reducer_new, freed once; no backward pass is running.
        unsafe { owd_reducer_free(self.raw) }
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        self.heartbeat.stop.store(true, Ordering::SeqCst);
        if self.finished {
            // SAFETY: no collective is in flight after `finish`.
            unsafe { owd_group_free(self.group) };
        }
        // Otherwise (an error left the loop) the group is leaked: its threads may be blocked
        // on a peer, and freeing it would join them. The process is about to end.
    }
}

/// The heartbeat's period for a timeout: a tenth of it, within [50 ms, 5 s].
fn hb_interval(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Every interval: adds 1 to this rank's counter and reads everyone's. A rank whose counter has
/// not moved for the timeout less four intervals is lost; a store that stops answering means
/// rank 0, its host, is. Rank 0 waits three intervals more before it ends, so that the others,
/// which see the same counters, name the lost rank themselves before the store goes; every rank
/// has ended within the timeout.
fn start_heartbeat(
    store: StorePtr,
    rank: usize,
    world: usize,
    timeout: Duration,
    master: String,
) -> Heartbeat {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let interval = hb_interval(timeout);
    let stale = timeout.saturating_sub(4 * interval).max(interval);
    let handle = std::thread::Builder::new()
        .name(format!("openwit-heartbeat-{rank}"))
        .spawn(move || {
            let store = store;
            let key = cstring(&format!("{HB_PREFIX}{rank}"));
            let prefix = cstring(HB_PREFIX);
            let mut seen = vec![(i64::MIN, Instant::now()); world];
            let mut counts = vec![0i64; world];
            while !stop2.load(Ordering::SeqCst) {
                // SAFETY: this thread's own store client; C strings and buffers outlive calls.
                let r = store_add(&store, &key, 1).and_then(|_| {
                    check(unsafe {
                        owd_store_counters(
                            store.0,
                            prefix.as_ptr(),
                            world as c_int,
                            counts.as_mut_ptr(),
                        )
                    })
                });
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Err(e) = r {
                    die(&format!(
                        "rank {rank} of {world}: lost rank 0: the rendezvous store it serves at {master} stopped answering ({e})"
                    ));
                }
                let now = Instant::now();
                let mut lost = Vec::new();
                for (p, (last, at)) in seen.iter_mut().enumerate() {
                    if counts[p] != *last {
                        *last = counts[p];
                        *at = now;
                    } else if p != rank && now.duration_since(*at) > stale {
                        lost.push(p);
                    }
                }
                if !lost.is_empty() {
                    let names: Vec<String> = lost.iter().map(|p| format!("rank {p}")).collect();
                    if rank == 0 {
                        // Keep serving the store while the others see the same loss.
                        std::thread::sleep(3 * interval);
                    }
                    die(&format!(
                        "rank {rank} of {world}: lost {}: no heartbeat for {:.1} s (timeout {:.1} s); ending with exit code 1, start the job again to resume from its last checkpoint",
                        names.join(", "),
                        stale.as_secs_f64(),
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::park_timeout(interval);
            }
        })
        .expect("cannot start the heartbeat thread");
    Heartbeat {
        stop,
        handle: Some(handle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let m: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankEnv::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn ranks_from_torchrun_and_slurm() {
        assert_eq!(env(&[]).unwrap(), None);
        let t = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.2"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            t,
            RankEnv {
                rank: 3,
                world: 8,
                local_rank: 1,
                master_addr: "10.0.0.2".into(),
                master_port: 29400
            }
        );
        let s = env(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[012-015,020],login1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                s.rank,
                s.world,
                s.local_rank,
                s.master_addr.as_str(),
                s.master_port
            ),
            (5, 16, 1, "gpu012", DEFAULT_PORT)
        );
        assert!(env(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]).is_err());
        assert!(env(&[("RANK", "0"), ("WORLD_SIZE", "2")]).is_err());
        assert!(env(&[("RANK", "x"), ("WORLD_SIZE", "2")]).is_err());
    }
}
