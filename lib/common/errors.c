/* Error names and messages, generated from RLOG_ERRNO_MAP. */
#include "liblog.h"

const char *rlog_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define RLOG__ERR_MSG(name, num, msg) \
    case RLOG_E##name:                \
        return msg;
        RLOG_ERRNO_MAP(RLOG__ERR_MSG)
#undef RLOG__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *rlog_errname(int err)
{
    switch (err) {
    case 0:
        return "RLOG_OK";
#define RLOG__ERR_NAME(name, num, msg) \
    case RLOG_E##name:                 \
        return "RLOG_E" #name;
        RLOG_ERRNO_MAP(RLOG__ERR_NAME)
#undef RLOG__ERR_NAME
    default:
        return "RLOG_EUNKNOWN";
    }
}

int rlog_version(void)
{
    return RLOG_VERSION_NUMBER;
}

const char *rlog_version_string(void)
{
    return RLOG_VERSION_STRING;
}
