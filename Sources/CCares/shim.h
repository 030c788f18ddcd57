#ifndef HERALD_CCARES_SHIM_H
#define HERALD_CCARES_SHIM_H
#include <ares.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <poll.h>
#endif
