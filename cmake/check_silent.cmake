# ctest helper: cmake -DCOMMAND="prog|arg|arg..." -P check_silent.cmake
# passes only if the command exits 0 and prints nothing.  For checkers that
# report a problem on stderr yet exit 0 (systemd-analyze verify says
# "Unknown key ..., ignoring." that way), or exit 0 on style notes.
string(REPLACE "|" ";" cmd "${COMMAND}")
list(GET cmd 0 prog)
if(NOT prog OR prog MATCHES "-NOTFOUND$")
  message(FATAL_ERROR "check_silent: the checker is not installed "
                      "(scripts/install-deps.sh installs it): ${COMMAND}")
endif()
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "")
  list(JOIN cmd " " shown)
  message(FATAL_ERROR "check_silent: '${shown}' exited ${rc}:\n${out}")
endif()
