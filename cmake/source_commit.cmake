# cmake -DSRC=<source dir> -DOUT=<header> -P source_commit.cmake
# Writes OUT = "#define HYDRA_SOURCE_COMMIT "<git HEAD>[-dirty]"" ("unknown"
# outside a git checkout), rewriting it only when it changed so that only the
# files that include it recompile. Run at every build (CMakeLists.txt): the
# claims gate records which code measured its results (docs/claims.md).
execute_process(COMMAND git -C "${SRC}" rev-parse HEAD OUTPUT_VARIABLE commit
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no OUTPUT_VARIABLE changes
                  RESULT_VARIABLE rc ERROR_QUIET)
  if(NOT changes STREQUAL "")
    set(commit "${commit}-dirty")
  endif()
endif()
set(text "#define HYDRA_SOURCE_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
