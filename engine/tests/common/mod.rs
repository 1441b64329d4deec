//! Helpers shared by the engine's integration tests.

/// Runs `f` on a fresh glommio executor (unbound, 4 MiB of I/O memory).
pub fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(4 << 20)
        .make()
        .unwrap()
        .run(f)
}
