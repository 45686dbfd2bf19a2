//! Helpers shared by the process-level tests: free ports, child processes killed on drop, waiting on
//! conditions with a deadline.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod dledger;
mod ports;
pub use ports::free_port_block;

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Spawns `bin args...` with stdout/stderr captured to files in `log_dir`.
    pub fn spawn(bin: &str, args: &[&str], log_dir: &Path, name: &str) -> ChildGuard {
        let out = std::fs::File::create(log_dir.join(format!("{name}.out"))).unwrap();
        let err = std::fs::File::create(log_dir.join(format!("{name}.err"))).unwrap();
        let child = Command::new(bin)
            .args(args)
            .env("HOME", log_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        ChildGuard(Some(child))
    }

    /// Sends SIGTERM and waits for a clean exit (with a deadline).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("process did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process's exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `cond` holds, polling, or panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True if something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Runs a command to completion.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

/// Stdout and stderr of an output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
pub mod rmq;

/// A container config with an embedded NameServer and the given broker files, in `dir`.
pub fn write_container(dir: &Path, brokers: &[&str]) -> (std::path::PathBuf, u16, u16) {
    let port = free_port_block(2, 0);
    let ns = free_port_block(0, 0);
    let conf = dir.join("container.conf");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nembeddedNamesrvEnable=true\nembeddedNamesrvPort={ns}\nnamesrvAddr=127.0.0.1:{ns}\nbrokerConfigPaths={}\nbrokerConfigDirs=.\nlogRoot={}\n",
            brokers.join(":"),
            dir.join("logs").display()
        ),
    )
    .unwrap();
    (conf, port, ns)
}

/// A master broker config in `dir` with small files; returns (file name, listen port).
pub fn write_broker(dir: &Path, name: &str, extra: &str) -> (String, u16) {
    let port = free_port_block(2, 1);
    let file = format!("{name}.conf");
    std::fs::write(
        dir.join(&file),
        format!(
            "brokerClusterName=TestCluster\nbrokerName={name}\nbrokerId=0\nbrokerRole=ASYNC_MASTER\nlistenPort={port}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=1048576\nmaxHashSlotNum=1000\nmaxIndexNum=4000\nmappedFileSizeConsumeQueue=6000\n{extra}",
            dir.join("store").join(name).display()
        ),
    )
    .unwrap();
    (file, port)
}

/// A container process hosting one broker written by [`write_broker`], with an embedded NameServer.
pub struct OneBroker {
    /// The container process (killed on drop).
    pub child: ChildGuard,
    /// The broker's address, `127.0.0.1:port`.
    pub addr: String,
    /// The embedded NameServer's address.
    pub nsaddr: String,
    /// The container config, to start it again.
    pub conf: std::path::PathBuf,
}

/// Writes a broker `name` (with `extra` config lines) and a container hosting it in `dir`, starts
/// the container (its output in `dir/<name>.{out,err}`) and waits until the broker listens.
pub fn start_one_broker(dir: &Path, name: &str, extra: &str) -> OneBroker {
    let (file, port) = write_broker(dir, name, extra);
    let (conf, _cport, ns) = write_container(dir, &[&file]);
    let child = ChildGuard::spawn(env!("CARGO_BIN_EXE_mqbrokercontainer"), &["-c", conf.to_str().unwrap()], dir, name);
    wait_until("the broker listens", Duration::from_secs(30), || port_open(port));
    OneBroker { child, addr: format!("127.0.0.1:{port}"), nsaddr: format!("127.0.0.1:{ns}"), conf }
}

/// Waits until the async condition holds, polling, or panics after `timeout` naming `what`.
pub async fn wait_async<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Says on the test's real stderr (not captured by the harness, so it shows in `cargo test` output)
/// that `test` did not run and why. Under CI (`CI` set) a test that cannot run is a failure: CI runs
/// as root and must run every test.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run under CI: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// True when running as root; otherwise reports the test as skipped (see [`skip`]).
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    skip(test, &format!("needs root to mount a tmpfs (euid {euid})"));
    false
}

/// Starts the `mqnamesrv` binary `bin` on a free port with its files in `dir`, and waits until it
/// listens; returns the process and its `127.0.0.1:port` address.
pub fn start_namesrv(bin: &str, dir: &Path) -> (ChildGuard, String) {
    let port = free_port_block(0, 0);
    let conf = dir.join("namesrv.conf");
    std::fs::write(&conf, format!("listenPort={port}\nkvConfigPath={}\n", dir.join("kv.json").display())).unwrap();
    let ns = ChildGuard::spawn(bin, &["-c", conf.to_str().unwrap()], dir, "namesrv");
    wait_until("the NameServer listens", Duration::from_secs(20), || port_open(port));
    (ns, format!("127.0.0.1:{port}"))
}
