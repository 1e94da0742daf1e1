/*
 * ports — loopback TCP ports for test nodes to listen on, below the
 * kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), so an
 * outgoing connection of this or another process cannot take one between
 * the check and the listen.
 */
#ifndef RL_TEST_PORTS_H
#define RL_TEST_PORTS_H

#define TH_PORT_LOW 10000

/* A port on 127.0.0.1 nobody listens on right now. The first search in a
 * process starts at a place that depends on `base` and the process id (so
 * parallel test processes rarely meet); later ones go on from there, so a
 * process never gets the same port twice. base if none is free. */
int th_free_port(int base);
/* The first of n consecutive such ports. */
int th_free_ports(int base, int n);

#endif
