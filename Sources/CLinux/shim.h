// Linux interfaces the Glibc module does not export: epoll (the Poller) and netlink (address changes).
#ifdef __linux__
#include <sys/epoll.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#endif
