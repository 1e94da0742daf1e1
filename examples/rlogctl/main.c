/*
 * rlogctl: an example host program for liblog (see rlogctl.h). The program is
 * rlogctl_main (dispatch.c); this file is only its entry point, so that the
 * rest can be linked into test/nemesis/nemesis_node as well.
 */
#include "rlogctl.h"

int main(int argc, char **argv)
{
    return rlogctl_main(argc, argv);
}
