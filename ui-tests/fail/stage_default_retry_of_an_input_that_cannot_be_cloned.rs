use pipeline::prelude::*;

struct Job(u64);

#[stage(on_error = retry(3, backoff = 10ms))]
fn double(job: Job) -> u64 {
    job.0 * 2
}

fn main() {
    let _ = double(Job(1));
}
