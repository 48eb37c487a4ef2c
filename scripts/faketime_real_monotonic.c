/* Preloaded in front of libfaketime by scripts/run-tests-at-times.sh (see its header).
 *
 * The script fakes the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1). libfaketime 0.9.10
 * (Debian 12) nevertheless rewrites absolute CLOCK_MONOTONIC deadlines as if they were faked
 * wall-clock times:
 *   - clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...), which Python's time.sleep() uses,
 *     fails with EINVAL;
 *   - timerfd_settime(TFD_TIMER_ABSTIME) on a CLOCK_MONOTONIC timerfd (io::tcp_reactor's
 *     timers, also in mts-sim) is armed years away, so no timer ever fires.
 * Since the monotonic clock is real, such calls go straight to the kernel here; calls on any
 * other clock are left to libfaketime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int kernel_result(long r) { return r == 0 ? 0 : errno; }

int clock_nanosleep(clockid_t clock, int flags, const struct timespec* request, struct timespec* remain) {
  if (clock == CLOCK_MONOTONIC)
    return kernel_result(syscall(SYS_clock_nanosleep, clock, flags, request, remain));
  static int (*next)(clockid_t, int, const struct timespec*, struct timespec*);
  if (!next)
    next = (int (*)(clockid_t, int, const struct timespec*, struct timespec*))dlsym(RTLD_NEXT, "clock_nanosleep");
  return next(clock, flags, request, remain);
}

/* Which descriptors are monotonic timerfds (enough for the test processes' descriptors). */
enum { max_fd = 1 << 16 };
static unsigned char monotonic_timerfd[max_fd];

int timerfd_create(int clock, int flags) {
  int fd = (int)syscall(SYS_timerfd_create, clock, flags);
  if (fd >= 0 && fd < max_fd)
    monotonic_timerfd[fd] = clock == CLOCK_MONOTONIC;
  return fd;
}

int timerfd_settime(int fd, int flags, const struct itimerspec* value, struct itimerspec* old) {
  if (fd >= 0 && fd < max_fd && monotonic_timerfd[fd])
    return syscall(SYS_timerfd_settime, fd, flags, value, old);
  static int (*next)(int, int, const struct itimerspec*, struct itimerspec*);
  if (!next)
    next = (int (*)(int, int, const struct itimerspec*, struct itimerspec*))dlsym(RTLD_NEXT, "timerfd_settime");
  return next(fd, flags, value, old);
}
