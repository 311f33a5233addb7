/* A fixture for check_layers: the FUSE layer reaching past the hub into
 * the device.  Never compiled. */
#include "vportfs/hub.h"
#include "vportfs/vser.h"
