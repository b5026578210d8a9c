//! The operating system's random numbers for the IKE engine (getrandom(2)).

/// `getrandom(2)` as the ike crate's [`ike::Rng`].
pub struct OsRng;

impl ike::Rng for OsRng {
    fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let rest = &mut out[done..];
            // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match n {
                n if n > 0 => done += n as usize,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                // Blocking getrandom fails only for a bad buffer or a kernel without it
                // (before 3.17): no key may come from anything weaker.
                _ => panic!("getrandom failed: {}", std::io::Error::last_os_error()),
            }
        }
    }
}
