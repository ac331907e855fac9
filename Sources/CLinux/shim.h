// Linux interfaces the Glibc module does not export: epoll, for the Poller.
#ifdef __linux__
#include <sys/epoll.h>
#endif
