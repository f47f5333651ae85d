//! The controllers under test as child processes: the release credsync operator and the External
//! Secrets Operator. Each talks to the API server as its own impersonated user, so the audit log
//! tells their requests apart from the benchmark's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::OPERATOR_NAMESPACE;
use crate::drive::Env;
use crate::procstat::{ProcStats, proc_stats};
use credsync_testkit::ControlPlane;

/// A controller under test running as a child process: credsync (`Operator::start`) or the
/// External Secrets Operator (`Operator::start_eso`).
pub(crate) struct Operator {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) log: PathBuf,
    /// Where it serves /metrics.
    pub(crate) port: u16,
}

impl Operator {
    /// The release credsync operator, impersonating `credsync-operator`.
    pub(crate) async fn start(env: &Env, label: &str, concurrency: u32) -> Operator {
        let port = free_port();
        let args = [
            "run".to_string(),
            "--allow-http".into(),
            "--allow-private-vendor-addresses".into(),
            "--log-level".into(),
            "warn".into(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{port}"),
            "--concurrency".into(),
            concurrency.to_string(),
            "--operator-namespace".into(),
            OPERATOR_NAMESPACE.into(),
        ];
        Operator::spawn(
            &env.operator_bin,
            &args,
            &env.operator_kubeconfig,
            &env.out.join(format!("operator-{label}.log")),
            port,
            "/readyz",
        )
        .await
    }

    /// The External Secrets Operator controller with its defaults plus `flags`, impersonating
    /// `external-secrets`. Ready once it serves /metrics (it has no readiness endpoint of its own
    /// in the root command).
    pub(crate) async fn start_eso(
        bin: &Path,
        kubeconfig: &Path,
        log: &Path,
        flags: &[String],
    ) -> Operator {
        let port = free_port();
        let mut args = vec![
            "--metrics-addr".to_string(),
            format!("127.0.0.1:{port}"),
            "--loglevel".into(),
            "error".into(),
        ];
        args.extend(flags.iter().cloned());
        Operator::spawn(bin, &args, kubeconfig, log, port, "/metrics").await
    }

    async fn spawn(
        bin: &Path,
        args: &[String],
        kubeconfig: &Path,
        log: &Path,
        port: u16,
        ready_path: &str,
    ) -> Operator {
        let out = std::fs::File::create(log).expect("create the controller log");
        let err = out.try_clone().expect("controller log");
        let mut child = tokio::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let pid = child.id().expect("controller pid");
        let probe = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited with {status}; see {}",
                    bin.display(),
                    log.display()
                );
            }
            let ready = probe
                .get(format!("http://127.0.0.1:{port}{ready_path}"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after 60 s; see {}",
                bin.display(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Operator {
            child,
            pid,
            log: log.to_path_buf(),
            port,
        }
    }

    pub(crate) fn stats(&self, env: &Env) -> ProcStats {
        proc_stats(self.pid, env.clk_tck)
    }

    /// Seconds its vendor requests held a connection slot so far, and how many there were
    /// (the sum and count of `credsync_vendor_request_duration_seconds`).
    pub(crate) async fn vendor_time(&self) -> (f64, f64) {
        let text = match reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let total = |series: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            total("credsync_vendor_request_duration_seconds_sum"),
            total("credsync_vendor_request_duration_seconds_count"),
        )
    }

    /// Lines the operator logged (at warn and above).
    pub(crate) fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The control plane's kubeconfig with `user` impersonated (in group system:masters), so the
/// audit log attributes that process's requests; written as `<user>.kubeconfig` in `out`.
pub(crate) fn impersonating_kubeconfig(cp: &ControlPlane, out: &Path, user: &str) -> PathBuf {
    let text = std::fs::read_to_string(cp.kubeconfig_path()).expect("read the kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse the kubeconfig");
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .expect("kubeconfig users");
    for entry in users {
        let Some(auth) = entry
            .get_mut("user")
            .and_then(serde_yaml::Value::as_mapping_mut)
        else {
            continue;
        };
        auth.insert("as".into(), user.into());
        auth.insert(
            "as-groups".into(),
            serde_yaml::Value::Sequence(vec!["system:masters".into()]),
        );
    }
    let path = out.join(format!("{user}.kubeconfig"));
    std::fs::write(
        &path,
        serde_yaml::to_string(&config).expect("serialise the kubeconfig"),
    )
    .expect("write the impersonating kubeconfig");
    path
}
