# Small helpers that keep every folder's CMakeLists a few lines long.

set(DSI_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wconversion
    -Wno-sign-conversion -Wcast-align -Wimplicit-fallthrough)

# Host code of .cu files: -Wall -Wextra (nvcc's generated code trips -Wpedantic and -Wshadow);
# device code: ptxas reports register spills. (Not local-memory use in general: the f64 sin/cos of
# large rotary angles keeps a stack frame for its rarely taken argument-reduction path.)
set(DSI_CUDA_WARNINGS -Xcompiler=-Wall,-Wextra -Xptxas=-warn-spills)

function(dsi_common_flags target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${DSI_WARNINGS}>)
  if(DSINFER_CUDA)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${DSI_CUDA_WARNINGS}>)
  endif()
  if(DSINFER_ARCH AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=${DSINFER_ARCH}>)
  endif()
  if(DSINFER_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=address,undefined
                           -fno-sanitize-recover=undefined -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# dsi_library(NAME SRCS a.cpp b.cu DEPS other_lib ...)
# One folder = one static library named dsi_<NAME>; its include root is src/. .cu sources are
# compiled by nvcc (only in builds with DSINFER_CUDA).
function(dsi_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(dsi_${name} STATIC ${ARG_SRCS})
  target_include_directories(dsi_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(dsi_${name} PUBLIC ${ARG_DEPS})
  dsi_common_flags(dsi_${name})
endfunction()

# dsi_test(NAME SRCS a_test.cpp DEPS lib ... [LABELS slow] [FILTER gtest-filter])
# A GoogleTest binary registered with CTest, run from the source tree's tests/ folder; FILTER
# registers only the cases it selects (e.g. leaves to an mpirun entry the cases that need peers).
function(dsi_test name)
  cmake_parse_arguments(ARG "" "FILTER" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  dsi_common_flags(${name})
  include(GoogleTest)
  # Tests find their data and the binary from compile-time defaults (tests/common/test_paths.h):
  # gtest_discover_tests cannot pass list-valued properties such as a two-variable ENVIRONMENT.
  target_compile_definitions(${name} PRIVATE DSINFER_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             DSINFER_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  set(props "")
  if(ARG_LABELS)
    list(LENGTH ARG_LABELS n_labels)
    if(NOT n_labels EQUAL 1)
      message(FATAL_ERROR "dsi_test(${name}): one label at most")
    endif()
    set(props PROPERTIES LABELS ${ARG_LABELS})
  endif()
  set(filter "")
  if(ARG_FILTER)
    set(filter TEST_FILTER ${ARG_FILTER})
  endif()
  gtest_discover_tests(${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests
    ${props} ${filter}
    DISCOVERY_TIMEOUT 60)
endfunction()

# dsi_embed(TARGET SYMBOL FILE): links FILE's bytes into TARGET as
#   extern "C" const unsigned char SYMBOL[]; extern "C" const unsigned char SYMBOL_end[];
# through the assembler's .incbin, which costs no compile time however large the file.
function(dsi_embed target symbol file)
  set(asm ${CMAKE_CURRENT_BINARY_DIR}/embed_${symbol}.S)
  file(WRITE ${asm}
    ".section .rodata\n.balign 16\n.global ${symbol}\n${symbol}:\n.incbin \"${file}\"\n"
    ".global ${symbol}_end\n${symbol}_end:\n.byte 0\n.section .note.GNU-stack,\"\",@progbits\n")
  set_source_files_properties(${asm} PROPERTIES OBJECT_DEPENDS ${file})
  target_sources(${target} PRIVATE ${asm})
endfunction()

# dsi_py_test(NAME SCRIPT [ARGS ...] [LABELS ...]): a Python test (a real client against the
# real binary) run with the project's virtual environment from scripts/setup.sh.
set(DSI_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python CACHE FILEPATH "Python with the test tools")
# ENV adds VAR=VALUE entries to the test's environment.
# SERIAL, and every test labelled mpi, runs alone under `ctest -j`: a test that orders events by
# the time they arrive, or ranks oversubscribing CI's 2 cores with a collective timeout of 2 s.
function(dsi_py_test name script)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "ARGS;LABELS;ENV" ${ARGN})
  if(ARG_ENV)
    list(JOIN ARG_ENV ";" ARG_ENV)
    set(ARG_ENV ";${ARG_ENV}")
  endif()
  add_test(NAME ${name} COMMAND ${DSI_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/${script} ${ARG_ARGS}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "DSINFER_BIN=${CMAKE_BINARY_DIR}/bin/dsinfer;DSINFER_DATA=${PROJECT_SOURCE_DIR}/tests/data;PYTHONUNBUFFERED=1${ARG_ENV}"
    LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  if(ARG_SERIAL OR "mpi" IN_LIST ARG_LABELS)
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# dsi_mpi_test(NAME NP COMMAND [ARGS...]): COMMAND (a target name or a path) as NP real ranks
# under OpenMPI's mpirun, label mpi. --oversubscribe: CI machines have fewer cores than ranks;
# --allow-run-as-root: CI containers run as root (OMPI_ALLOW_RUN_AS_ROOT* do the same for a
# mpirun started by a test script); single-copy off: containers forbid the ptrace CMA uses.
find_program(DSI_MPIRUN mpirun)
set(DSI_MPIRUN_FLAGS --oversubscribe --allow-run-as-root --mca btl_vader_single_copy_mechanism none
    CACHE STRING "mpirun flags of the mpi tests")
function(dsi_mpi_test name np command)
  cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS" ${ARGN})
  if(TARGET ${command})
    set(command $<TARGET_FILE:${command}>)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${DSI_MPIRUN} ${DSI_MPIRUN_FLAGS} -np ${np} ${command} ${ARG_UNPARSED_ARGUMENTS}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests)
  # LeakSanitizer reports OpenMPI's own allocations kept until exit: not ours to fix.
  set_tests_properties(${name} PROPERTIES LABELS "mpi;${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT} RUN_SERIAL TRUE
    ENVIRONMENT "DSINFER_BIN=${CMAKE_BINARY_DIR}/bin/dsinfer;DSINFER_DATA=${PROJECT_SOURCE_DIR}/tests/data;ASAN_OPTIONS=detect_leaks=0;OMP_NUM_THREADS=1")
endfunction()
