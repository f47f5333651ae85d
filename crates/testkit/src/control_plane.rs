//! A real Kubernetes control plane on loopback: etcd and kube-apiserver (built from the official
//! Go modules, see hack/build-tools.sh) in a temporary folder, with a token-authenticated admin,
//! RBAC, and an audit log of every request. No controllers or nodes run: credsync needs only the
//! API server. Tests of namespace deletion start kube-controller-manager with its namespace
//! controller alone ([`ControlPlane::start_controller_manager`]); nothing else needs it.
//!
//! Test binaries share one control plane between their tests ([`ControlPlane::shared`]): it
//! is started once per process and its processes die with the process, however it ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{0}")]
    Setup(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

fn setup(message: impl Into<String>) -> DevError {
    DevError::Setup(message.into())
}

/// A running etcd + kube-apiserver.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    bin: PathBuf,
    etcd: Child,
    apiserver: Option<Child>,
    apiserver_args: Vec<String>,
    controller_manager: Option<Child>,
    port: u16,
    config: Config,
    probe: reqwest::Client,
    kubeconfig_path: PathBuf,
    version: String,
}

const ADMIN_TOKEN_USER: &str = "admin";

impl ControlPlane {
    /// Start etcd and kube-apiserver. Binaries come from `$KUBEBUILDER_ASSETS` when set, else
    /// from `hack/build-tools.sh control-plane` (which builds them once into a cache folder).
    ///
    /// The ports are free when picked but not held until the processes bind them, and another
    /// process's outgoing connection can take one meanwhile (tests start control planes side
    /// by side): a start that lost a port that way is tried again on new ports.
    pub async fn start() -> Result<ControlPlane, DevError> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Self::start_on_free_ports().await {
                Err(DevError::Setup(message))
                    if attempt < ATTEMPTS && message.contains("address already in use") =>
                {
                    eprintln!("control plane: a port was taken before it was bound; trying again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_on_free_ports() -> Result<ControlPlane, DevError> {
        let bin = binaries().await?;
        let started = std::time::Instant::now();
        let dir = tempfile::Builder::new().prefix("credsync-cp-").tempdir()?;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let port = free_port()?;

        let etcd = spawn(
            &bin.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", dir.path().join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
            &dir.path().join("etcd.log"),
        )?;

        // Serving certificate from a throwaway CA, so clients verify TLS as they would anywhere.
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "credsync-dev-ca");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let serving_key = KeyPair::generate()?;
        let serving =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
                .signed_by(&serving_key, &ca)?;
        let sa_key = KeyPair::generate()?;
        let token = format!("credsync-dev-{}", hex::encode(rand::random::<[u8; 16]>()));

        let write = |name: &str, content: &str| -> Result<String, DevError> {
            let path = dir.path().join(name);
            std::fs::write(&path, content)?;
            Ok(path.display().to_string())
        };
        let tls_cert = write("serving.crt", &serving.pem())?;
        let tls_key = write("serving.key", &serving_key.serialize_pem())?;
        let sa_pub = write("sa.pub", &sa_key.public_key_pem())?;
        let sa_priv = write("sa.key", &sa_key.serialize_pem())?;
        let tokens = write(
            "tokens.csv",
            &format!("{token},{ADMIN_TOKEN_USER},admin-uid,\"system:masters\"\n"),
        )?;
        let policy = write(
            "audit-policy.yaml",
            // RequestReceived is omitted, as in the example policy of the Kubernetes docs: every
            // request is still logged once it completes (and watches once they start).
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )?;
        let audit_log = dir.path().join("audit.log").display().to_string();

        let apiserver_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", dir.path().join("certs").display()),
            format!("--tls-cert-file={tls_cert}"),
            format!("--tls-private-key-file={tls_key}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={sa_pub}"),
            format!("--service-account-signing-key-file={sa_priv}"),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--token-auth-file={tokens}"),
            "--authorization-mode=RBAC".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            "--allow-privileged=true".into(),
            format!("--audit-policy-file={policy}"),
            format!("--audit-log-path={audit_log}"),
            "--audit-log-mode=blocking".into(),
            // Never rotate (the default rotates at 100 MB): readers keep byte offsets into it.
            "--audit-log-maxsize=1000000".into(),
            "--v=0".into(),
        ];
        let apiserver = spawn(
            &bin.join("kube-apiserver"),
            &apiserver_args,
            &dir.path().join("kube-apiserver.log"),
        )?;

        let kubeconfig = kubeconfig(port, &ca.pem(), &token)?;
        let kubeconfig_path = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig_path,
            serde_yaml::to_string(&kubeconfig).map_err(|e| setup(e.to_string()))?,
        )?;

        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| setup(format!("kubeconfig: {e}")))?;
        let probe = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(ca.pem().as_bytes())
                    .map_err(|e| setup(e.to_string()))?,
            )
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let mut cp = ControlPlane {
            probe,
            dir,
            bin,
            etcd,
            apiserver: Some(apiserver),
            apiserver_args,
            controller_manager: None,
            port,
            config,
            kubeconfig_path,
            version: String::new(),
        };
        cp.wait_ready(Duration::from_secs(90)).await?;
        eprintln!(
            "control plane: kube-apiserver {} at https://127.0.0.1:{} (ready in {:.1}s, logs in {})",
            cp.version,
            cp.port,
            started.elapsed().as_secs_f64(),
            cp.dir.path().display()
        );
        Ok(cp)
    }

    /// This process's shared control plane, started on first use. Its processes are started
    /// from a thread that lives as long as the process, so that they die with it (see
    /// [`spawn`]); at exit they are stopped and their folder removed. A test binary's tests
    /// share it: each brings its own clients (a client belongs to its test's runtime) and
    /// namespaces. The first start's failure is every caller's.
    pub async fn shared() -> Result<&'static ControlPlane, DevError> {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        // Blocking: every test but the first waits here for the first to finish starting it.
        let shared = tokio::task::spawn_blocking(|| SHARED.get_or_init(start_for_the_process))
            .await
            .map_err(|e| setup(format!("starting the shared control plane: {e}")))?;
        shared.as_ref().map_err(|e| setup(e.clone()))
    }

    /// Process ids of every process this control plane runs.
    fn child_pids(&self) -> Vec<u32> {
        [
            self.etcd.id(),
            self.apiserver.as_ref().and_then(|c| c.id()),
            self.controller_manager.as_ref().and_then(|c| c.id()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), DevError> {
        let result = self.poll_ready(timeout).await;
        if result.is_err() {
            // Keep the logs for whoever reads the error.
            self.dir.disable_cleanup(true);
        }
        result
    }

    async fn poll_ready(&mut self, timeout: Duration) -> Result<(), DevError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(child) = self.apiserver.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(self.failure(&format!("kube-apiserver exited with {status}")));
            }
            if let Some(status) = self.etcd.try_wait()? {
                return Err(self.failure(&format!("etcd exited with {status}")));
            }
            // Plain reqwest: a client that logs every 500 during start-up would bury real errors.
            let ready = self
                .probe
                .get(format!("https://127.0.0.1:{}/readyz", self.port))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                let client = self.client();
                let default_ns = Api::<Namespace>::all(client.clone())
                    .get_opt("default")
                    .await;
                match default_ns {
                    Ok(Some(_)) => {
                        self.version = client.apiserver_version().await?.git_version;
                        return Ok(());
                    }
                    // No controllers run; the API server's own bootstrap normally creates
                    // `default`, but create it if that has not happened.
                    Ok(None) => {
                        if let Err(e) = self.create_namespace("default", BTreeMap::new()).await {
                            tracing::debug!("creating namespace default: {e}");
                        }
                    }
                    Err(_) => {}
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.failure(&format!("kube-apiserver not ready after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An error naming the log files, with the end of each.
    fn failure(&self, what: &str) -> DevError {
        let mut message = format!("{what}; logs in {}", self.dir.path().display());
        for name in ["etcd.log", "kube-apiserver.log"] {
            let path = self.dir.path().join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            message.push_str(&format!(
                "\n--- {} (last {} lines)",
                path.display(),
                tail.len()
            ));
            for line in tail {
                message.push_str("\n  ");
                message.push_str(line);
            }
        }
        setup(message)
    }

    /// An admin (system:masters) client that verifies the server's certificate.
    pub fn client(&self) -> Client {
        match Client::try_from(self.config.clone()) {
            Ok(client) => client,
            Err(e) => panic!("a client for the generated kubeconfig: {e}"),
        }
    }

    /// The client configuration (to build clients with other settings, e.g. impersonation).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A kubeconfig file for kubectl and out-of-process operators.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// kubectl, pointed at this control plane.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig_path);
        cmd
    }

    /// The API server's version, e.g. v1.36.3.
    pub fn server_version(&self) -> String {
        self.version.clone()
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The audit log: one JSON line per request (level Metadata).
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Process ids of etcd and kube-apiserver (None once stopped), to measure what they spend.
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        (self.etcd.id(), self.apiserver.as_ref().and_then(|a| a.id()))
    }

    /// The folder holding logs, certificates and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The folder holding etcd, kube-apiserver and kubectl.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Stop kube-apiserver (etcd keeps running).
    pub async fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Start kube-apiserver again on the same port and etcd.
    pub async fn start_apiserver(&mut self) -> Result<(), DevError> {
        if self.apiserver.is_none() {
            let log = self.dir.path().join("kube-apiserver.log");
            self.apiserver = Some(spawn(
                &self.bin.join("kube-apiserver"),
                &self.apiserver_args,
                &log,
            )?);
        }
        self.wait_ready(Duration::from_secs(90)).await
    }

    /// Start kube-controller-manager with the namespace controller only, so that a deleted
    /// namespace is emptied and goes away as in a real cluster. Needs `kube-controller-manager`
    /// beside kube-apiserver (hack/build-tools.sh builds it). Idempotent.
    pub async fn start_controller_manager(&mut self) -> Result<(), DevError> {
        if self.controller_manager.is_some() {
            return Ok(());
        }
        let program = self.bin.join("kube-controller-manager");
        if !program.is_file() {
            return Err(setup(format!(
                "{} is missing; run hack/build-tools.sh control-plane",
                program.display()
            )));
        }
        let args = vec![
            format!("--kubeconfig={}", self.kubeconfig_path.display()),
            "--controllers=namespace".into(),
            "--leader-elect=false".into(),
            // Nothing scrapes it; no port to collide with parallel tests.
            "--secure-port=0".into(),
            "--use-service-account-credentials=false".into(),
            "--v=0".into(),
        ];
        let log = self.dir.path().join("kube-controller-manager.log");
        self.controller_manager = Some(spawn(&program, &args, &log)?);
        // It has no readiness endpoint without a port; an early exit is the failure to catch.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(child) = self.controller_manager.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.dir.disable_cleanup(true);
            return Err(setup(format!(
                "kube-controller-manager exited with {status}; log in {}",
                log.display()
            )));
        }
        Ok(())
    }

    /// Create a namespace with labels (idempotent).
    pub async fn create_namespace(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), DevError> {
        Ok(crate::objects::ensure_namespace(&self.client(), name, labels).await?)
    }

    /// Server-side apply the CRDs and wait until each is Established.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<(), DevError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client());
        for crd in crds {
            api.patch(
                &crd.name_any(),
                &PatchParams::apply("credsync-dev").force(),
                &Patch::Apply(crd),
            )
            .await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for crd in crds {
            loop {
                let current = api.get(&crd.name_any()).await?;
                let established = current
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if established {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(setup(format!(
                        "CRD {} not Established after 60s",
                        crd.name_any()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let mut children: Vec<&mut Child> = self
            .controller_manager
            .iter_mut()
            .chain(self.apiserver.iter_mut())
            .collect();
        children.push(&mut self.etcd);
        for child in &mut children {
            let _ = child.start_kill();
        }
        // Reap them (briefly) before the temporary folder goes, so etcd is not writing into a
        // folder being removed and no zombies are left behind.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for child in &mut children {
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// What the exit hook stops and removes: the shared control plane's processes and folder.
static SHARED_AT_EXIT: OnceLock<(Vec<u32>, PathBuf)> = OnceLock::new();

/// Start the shared control plane on a thread of its own that never ends: its runtime reaps
/// the processes, and their parent-death signal (tied to the spawning thread) fires only when
/// the process ends. Statics are never dropped, so an exit hook stops them and removes the
/// folder.
fn start_for_the_process() -> Result<ControlPlane, String> {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("shared-control-plane".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started_tx.send(Err(format!("a runtime for the control plane: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = ControlPlane::start().await.map_err(|e| e.to_string());
                let _ = started_tx.send(started);
                std::future::pending::<()>().await
            });
        })
        .map_err(|e| format!("a thread for the control plane: {e}"))?;
    let started = started_rx
        .recv()
        .map_err(|_| "the control plane's thread ended before it started".to_string())?;
    if let Ok(cp) = &started {
        let _ = SHARED_AT_EXIT.set((cp.child_pids(), cp.dir().to_path_buf()));
        // SAFETY: registers a plain function with no arguments; it touches only statics.
        if unsafe { sys::atexit(stop_shared_at_exit) } != 0 {
            tracing::warn!("no exit hook: the shared control plane's folder stays behind");
        }
    }
    started
}

/// The exit hook: kill the shared control plane's processes, reap them, remove its folder.
extern "C" fn stop_shared_at_exit() {
    let Some((pids, dir)) = SHARED_AT_EXIT.get() else {
        return;
    };
    for &pid in pids {
        // SAFETY: signals and reaps only our own children, by id.
        unsafe { sys::kill(pid as i32, sys::SIGKILL) };
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for &pid in pids {
        let mut status = 0;
        // SAFETY: as above; WNOHANG never blocks. 0: still running; -1: already reaped.
        while unsafe { sys::waitpid(pid as i32, &mut status, sys::WNOHANG) } == 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The few C library calls the harness needs (std links the C library anyway).
mod sys {
    use std::ffi::c_int;

    pub const SIGKILL: c_int = 9;
    pub const WNOHANG: c_int = 1;
    pub const PR_SET_PDEATHSIG: c_int = 1;

    unsafe extern "C" {
        pub fn atexit(hook: extern "C" fn()) -> c_int;
        pub fn kill(pid: i32, signal: c_int) -> c_int;
        pub fn waitpid(pid: i32, status: *mut c_int, options: c_int) -> i32;
        pub fn prctl(option: c_int, ...) -> c_int;
        pub fn getppid() -> i32;
    }
}

fn kubeconfig(port: u16, ca_pem: &str, token: &str) -> Result<Kubeconfig, DevError> {
    use base64::Engine;
    let yaml = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "credsync-dev", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": ADMIN_TOKEN_USER, "user": {"token": token}}],
        "contexts": [{"name": "credsync-dev", "context": {"cluster": "credsync-dev", "user": ADMIN_TOKEN_USER}}],
        "current-context": "credsync-dev",
    });
    serde_json::from_value(yaml).map_err(|e| setup(format!("kubeconfig: {e}")))
}

fn free_port() -> Result<u16, DevError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start a control-plane process that dies with the thread that started it (Linux's parent-death
/// signal), so that no etcd or kube-apiserver outlives a test process killed or aborted before
/// its destructors run.
fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, DevError> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let parent = std::process::id() as i32;
    let mut command = Command::new(program);
    // SAFETY: between fork and exec only async-signal-safe system calls run (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if sys::prctl(sys::PR_SET_PDEATHSIG, sys::SIGKILL as std::ffi::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have gone before the signal was asked for.
            if sys::getppid() != parent {
                return Err(std::io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| setup(format!("cannot start {}: {e}", program.display())))
}

/// The folder with etcd, kube-apiserver and kubectl.
async fn binaries() -> Result<PathBuf, DevError> {
    let required = ["etcd", "kube-apiserver", "kubectl"];
    if let Ok(assets) = std::env::var("KUBEBUILDER_ASSETS")
        && !assets.is_empty()
    {
        let dir = PathBuf::from(assets);
        if let Some(missing) = required.iter().find(|b| !dir.join(b).is_file()) {
            return Err(setup(format!(
                "KUBEBUILDER_ASSETS={} has no {missing}",
                dir.display()
            )));
        }
        return Ok(dir);
    }
    // The workspace root holds hack/; this crate sits two levels below it.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack/build-tools.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("control-plane")
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| setup(format!("cannot run {}: {e}", script.display())))?;
    if !output.status.success() {
        return Err(setup(format!(
            "{} failed ({}); the control plane cannot start",
            script.display(),
            output.status
        )));
    }
    let dir = PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    if let Some(missing) = required.iter().find(|b| !dir.join(b).is_file()) {
        return Err(setup(format!(
            "{} did not produce {missing}",
            script.display()
        )));
    }
    Ok(dir)
}
