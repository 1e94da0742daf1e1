/*
 * ports — a loopback TCP port for a test node to listen on.
 */
#ifndef RL_TEST_PORTS_H
#define RL_TEST_PORTS_H

/* A port on 127.0.0.1 nobody listens on right now, searched from a start
 * that depends on `base` and the process id (so parallel test processes
 * rarely meet); base if none is free. */
int th_free_port(int base);

#endif
