# The rooms of vportfs and who may include whom (docs/architecture.md).
#
#   cmake -DROOT=<source dir> -P cmake/check_layers.cmake
#
# Fails, naming the file, line and rule, when a source under ROOT/src
# includes a header of a room its room may not see, a private header of
# another folder, libev outside src/cli, or libfuse outside src/fs.
# The build runs it before compiling anything (target check_layers).

# Which room each public header belongs to.
set(room_of_log.h util)
set(room_of_buf.h util)
set(room_of_utf8.h util)
set(room_of_loop.h util)
set(room_of_vser.h device)
set(room_of_vu.h device)
set(room_of_vq.h device)
set(room_of_virtio_proto.h device)
set(room_of_vhost_user_proto.h device)
set(room_of_hub.h hub)
set(room_of_hub_events.h hub)
set(room_of_pfs.h fs)
set(room_of_chr.h chardev)
set(room_of_chr_spec.h chardev)
set(room_of_options.h cli)
set(room_of_ev_loop.h cli)
set(room_of_service.h cli)
set(room_of_sim.h sim)
set(room_of_uml_xstate.h uml)

# The one-way includes: fs -> hub, chardev -> hub, hub -> device; util
# is everybody's; cli wires the daemon together.
set(sees_util util)
set(sees_device util device)
set(sees_hub util device hub)
set(sees_fs util hub fs)
set(sees_chardev util hub chardev)
set(sees_cli util device hub fs chardev cli)
set(sees_sim util device sim)
set(sees_uml uml)

if(NOT ROOT)
  message(FATAL_ERROR "check_layers: pass -DROOT=<source dir>")
endif()

cmake_policy(SET CMP0057 NEW)

set(errors "")
file(GLOB_RECURSE sources RELATIVE "${ROOT}/src" "${ROOT}/src/*.c" "${ROOT}/src/*.h")
foreach(rel IN LISTS sources)
  string(REGEX MATCH "^[^/]+" room "${rel}")
  if(NOT DEFINED sees_${room})
    list(APPEND errors "src/${rel}: folder '${room}' is not a known room (add it to cmake/check_layers.cmake)")
    continue()
  endif()
  file(STRINGS "${ROOT}/src/${rel}" lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS lines)
    if(line MATCHES "#[ \t]*include[ \t]*\"vportfs/([^\"]+)\"")
      set(hdr "${CMAKE_MATCH_1}")
      if(NOT DEFINED room_of_${hdr})
        list(APPEND errors "src/${rel}: includes vportfs/${hdr}, which belongs to no room")
      elseif(NOT room_of_${hdr} IN_LIST sees_${room})
        list(APPEND errors "src/${rel}: room '${room}' may not include vportfs/${hdr} (room '${room_of_${hdr}}')")
      endif()
    elseif(line MATCHES "#[ \t]*include[ \t]*\"([^\"]*/[^\"]*)\"")
      list(APPEND errors "src/${rel}: includes \"${CMAKE_MATCH_1}\": another folder's private header")
    elseif(line MATCHES "#[ \t]*include[ \t]*<ev\\.h>" AND NOT room STREQUAL "cli")
      list(APPEND errors "src/${rel}: only src/cli may use libev (STYLE rule 6)")
    elseif(line MATCHES "#[ \t]*include[ \t]*<fuse" AND NOT room STREQUAL "fs")
      list(APPEND errors "src/${rel}: only src/fs may use libfuse")
    endif()
  endforeach()
endforeach()

if(errors)
  list(JOIN errors "\n  " text)
  message(FATAL_ERROR "layer check failed:\n  ${text}")
endif()
